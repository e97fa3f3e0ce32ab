"""``storegw demo``: a whole simulated store on one machine, narrated in the terminal.

A broker (Mosquitto, or amqtt in-process where Mosquitto is missing), the cloud member
service, the gateway and a simulated device of every kind: a till scanner on a pty, a member
card in a virtual PC/SC reader (when pcscd and vsmartcard-vpcd are installed), an NFC tag
tapped over nfcpy's udp device, and shelf labels on an OpenEPaperLink access point whose
images are saved as PNG. Then the broker is stopped, the till keeps working into the outbox,
the broker returns and the backlog replays. Ctrl-C ends it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from gateway import logs
from gateway.daemon import Gateway
from simulators.broker import free_port
from simulators.cloud import CloudService, seed
from simulators.demo.narration import console, say, show_event, summary
from simulators.demo.scenes import run_store
from simulators.demo.store import (
    GATEWAY,
    ISLAND,
    LABELS,
    READER,
    STORE,
    DemoBroker,
    api_tokens,
    fresh,
    island_config,
    island_token,
    ledger_identities,
    pcscd,
    stop_on_signals,
    store_config,
)
from simulators.demo.till import Till
from simulators.scanner import PtyScanner


async def run_demo(data_dir: Path, *, outage: bool = True, duration: float = 0.0) -> int:
    from drivers.nfc.codec import encode_ndef_message, uri_record
    from simulators.nfc import EmulatedNtag, NfcTagSimulator
    from simulators.oepl import OeplSimulator, VirtualTag

    stop = stop_on_signals()
    logs.setup("text", "WARNING")
    for name in ("gateway.bridge", "gateway.supervisor", "gateway.daemon"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("simulators").setLevel(logging.ERROR)  # the cloud's own redials
    logging.getLogger("nfc").setLevel(logging.WARNING)
    logging.getLogger("mqtt").setLevel(logging.CRITICAL)  # paho's socket errors: bridge logs them
    png_dir = data_dir / "labels"
    await asyncio.to_thread(fresh, data_dir)
    await asyncio.to_thread(png_dir.mkdir, parents=True, exist_ok=True)
    api_port = free_port()
    pos_token, kiosk_token = await asyncio.to_thread(api_tokens, data_dir / "gw")
    island_port, ledger_port = free_port(), free_port()
    island_pos = await asyncio.to_thread(island_token, data_dir / "gw2")
    identities = await asyncio.to_thread(ledger_identities, data_dir)
    broker = DemoBroker()
    say("starting a simulated store")
    await broker.start()
    kind = "Mosquitto" if broker.mosquitto else "embedded amqtt (MQTT 3.1.1; install mosquitto)"
    console.print(f"  broker  : {broker.url} ({kind})")
    nfc_port = free_port()
    sticker = EmulatedNtag(
        seed.NFC_BRUNO,
        "NTAG213",
        ndef=encode_ndef_message([uri_record(f"https://member.example.com/t/{STORE}/counter")]),
    )
    cloud = CloudService(
        broker.url,
        data_dir / "cloud.db",
        on_event=show_event,
        protocol=broker.protocol,
        identifier="storegw-demo-cloud",
        session_expiry_s=3600 if broker.mosquitto else 0,
    )
    tags = [VirtualTag(mac=mac, panel="2.9") for mac in LABELS]
    try:
        async with (
            pcscd() as smartcard,
            OeplSimulator(tags, png_dir=png_dir) as access_point,
            cloud,
        ):
            with (
                PtyScanner() as scanner,
                NfcTagSimulator(nfc_port, sticker, repeat=True, dwell_s=1.0, gap_s=5.0),
            ):
                config = store_config(
                    broker.url,
                    data_dir,
                    scanner.path,
                    broker.protocol,
                    nfc_port=nfc_port,
                    oepl_url=access_point.url,
                    smartcard=smartcard,
                    api_port=api_port,
                    store_ledger={
                        "role": "authority",
                        "listen": f"127.0.0.1:{ledger_port}",
                        **identities[GATEWAY],
                    },
                )
                island = island_config(
                    broker.url,
                    data_dir,
                    broker.protocol,
                    api_port=island_port,
                    store_ledger={
                        "role": "member",
                        "authority_url": f"https://127.0.0.1:{ledger_port}",
                        "authority_id": GATEWAY,
                        **identities[ISLAND],
                    },
                )
                console.print(f"  scanner : {scanner.path} (typing codes at till-1)")
                console.print(
                    f"  cards   : {READER if smartcard else 'off (install pcscd vsmartcard-vpcd)'}"
                )
                console.print(f"  nfc     : udp:127.0.0.1:{nfc_port} (a tag tapped every few s)")
                console.print(
                    f"  labels  : OpenEPaperLink AP {access_point.url}, {len(tags)} labels"
                )
                console.print(f"  label images (PNG), as the shelf shows them: {png_dir}/")
                base = f"http://127.0.0.1:{api_port}"
                console.print(f"  kiosk   : open {base}/kiosk/#token={kiosk_token}")
                console.print(
                    f"  till-3  : a second gateway ({ISLAND}), holding coupons through {GATEWAY}"
                    f" (the store's ledger authority, mutual TLS on :{ledger_port})"
                )
                gateway = Gateway(config)
                await run_store(
                    gateway,
                    stop=stop,
                    cloud=cloud,
                    broker=broker,
                    scanner=scanner,
                    smartcard=smartcard,
                    till=Till(base, pos_token),
                    island=(Gateway(island), Till(f"http://127.0.0.1:{island_port}", island_pos)),
                    outage=outage,
                    duration=duration,
                )
    finally:
        broker.cleanup()
        summary(cloud)
    return 0
