"""bench/fleet.py's figures, once the run is over: each phase's rates, latencies and copies,
the load it put on the broker, gateways and cloud, each storm's reconnects, backlog and
losses, and the accounting of every accepted id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from _fleet_report import broker_connects, latency_figures, pct, peak_per_second

if TYPE_CHECKING:
    from fleet import Fleet


def analyse(f: Fleet, storms: list[dict[str, Any]]) -> dict[str, Any]:
    a, led = f.args, f.ledger
    out: dict[str, Any] = dict(f.figures)
    for name, (t0, t1) in f.phases.items():
        ids = led.window(t0, t1)
        out[name] = {
            "accepted_per_s": round(len(ids) / (t1 - t0), 1),
            "at_cloud_per_s": round(sum(1 for i in ids if i in led.first) / (t1 - t0), 1),
            **latency_figures(led.latencies_ms(ids)),
            **led.copies_of(ids),
        }
    out["single"]["max_events_per_s"] = out.pop("single_max_events_per_s")
    load = out["load"]
    events = len(led.window(f.phases["opening"][0], f.phases["steady"][1]))
    for key in ("broker", "gateway_processes", "cloud_consumers"):
        cpu = load.pop(f"{key}_cpu_s")
        load[f"{key}_cpu_cores"] = round(cpu / load["seconds"], 3)
        load[f"{key}_cpu_us_per_event"] = round(cpu / max(1, events) * 1e6)
    out["ratios"] = {
        "steady_vs_single_gateway_max": round(
            out["steady"]["at_cloud_per_s"] / out["single"]["max_events_per_s"], 2
        ),
        "steady_p50_vs_single_gateway_p50": round(
            out["steady"]["p50_ms"] / out["single"]["p50_ms"], 2
        ),
        "steady_p99_vs_single_gateway_p99": round(
            out["steady"]["p99_ms"] / out["single"]["p99_ms"], 2
        ),
    }
    logged = broker_connects(f.broker.log_file)
    for s in storms:
        t_up = s["t_up"] = round(s["t_up"], 3)
        t_kill, t_on, t_stop = s.pop("t_kill"), s.pop("t_on"), s.pop("t_stop")
        t_end = s.pop("t_end")
        firsts: dict[int, float] = {}
        for at, gw in f.connects:
            if gw > 0 and t_up <= at < min(t_end, firsts.get(gw, t_end)):
                firsts[gw] = at
        cloud_back = max((t for t in f.subscribed if t_up <= t < t_end), default=t_end)
        early = {gw for gw, at in firsts.items() if at < cloud_back}
        backlog = [  # accepted while its gateway was offline
            i for i, (at, gw) in led.accepted.items() if t_kill <= at < firsts.get(gw, t_end)
        ]
        in_flight = [  # accepted before the kill, not at the cloud when it died
            i for i in led.window(t_on, t_kill) if led.first.get(i, float("inf")) >= t_kill
        ]
        affected = in_flight + backlog
        drained = led.drained_after(affected, t_up)
        peak, at_s = peak_per_second(firsts.values(), t_up)
        peak_100ms, _ = peak_per_second(firsts.values(), t_up, 0.1)
        spread = sorted(t - t_up for t in firsts.values())
        bpeak, _ = peak_per_second([t for t in logged if t < t_end], float(int(t_up)))
        s.update(
            {
                "backlog_events": len(backlog),
                "all_reconnected_s": round(max(firsts.values()) - t_up, 2)
                if len(firsts) == a.gateways
                else f"{len(firsts)}/{a.gateways}",
                "backlogs_drained_s": round(led.drained_after(backlog, t_up), 2),
                "peak_connects_per_s_client": peak,
                "peak_second_after_restart": at_s,
                "peak_connects_per_s_in_100ms": peak_100ms,
                "reconnects_p10_p90_s": [round(pct(spread, 10), 2), round(pct(spread, 90), 2)],
                "peak_connects_per_s_broker_log": bpeak,
                "attempts_while_down": sum(1 for t in f.attempts if t_kill <= t < t_up),
                "cloud_resubscribed_s": round(cloud_back - t_up, 3),
                "gateways_back_before_cloud": len(early),
                "in_flight_at_kill": len(in_flight),
                "in_flight_and_backlog_at_cloud_s": round(drained, 2),
                "all_back_and_drained_s": round(max(drained, max(firsts.values()) - t_up), 2)
                if len(firsts) == a.gateways
                else None,
                "storm_latency": latency_figures(
                    led.latencies_ms(led.window(t_kill, t_up + drained))
                ),
                **led.copies_of(led.window(t_on, t_stop)),
                "lost": sum(1 for i in backlog if i not in led.first),
                "lost_in_flight_at_kill": sum(1 for i in in_flight if i not in led.first),
                "lost_any_accepted_in_storm": sum(
                    1 for i in led.window(t_on, t_stop) if i not in led.first
                ),
                "lost_of_gateways_back_before_cloud": sum(
                    1 for i in backlog if i not in led.first and led.accepted[i][1] in early
                ),
            }
        )
    out["storms"] = storms
    split = led.copies_of(led.accepted)
    out["accounting"] = {
        "accepted": len(led.accepted),
        "lost": led.lost,
        "duplicates": led.duplicates,
        "duplicates_not_flagged_replayed": led.unflagged_duplicates,
        "unknown_ids": led.unknown,
        "refused_appends": f.refused,
        "redelivered_after_confirm_timeout": f.redelivered,
        "resent_after_reaching_no_subscriber": f.unrouted_resent,
        "gateway_published_unflagged_twice": f.sent_twice,
        "duplicates_not_flagged_marked_dup_by_broker": split[
            "duplicates_not_flagged_marked_dup_by_broker"
        ],
        "duplicates_flagged_neither": split["duplicates_not_flagged"]
        - split["duplicates_not_flagged_marked_dup_by_broker"],
        **({"confirmer": f.confirmed} if f.confirmed else {}),
        "lost_sample_gateway_accepted_at": led.lost_sample(),
    }
    return out
