// The kiosk page: a member scans or taps, sees points, balance, coupons, offers,
// appointments and service packages, and redeems, claims or checks in; someone who is not a
// member yet joins (phone number, explicit consent, optional marketing opt-in) and is the
// kiosk's member at once - offline with a provisional member number. Plain JS, no dependencies.
//
// Token: from the URL fragment (#token=...; browsers never send fragments, and the page
// removes it from the address bar at once), kept in localStorage so the kiosk survives a
// restart; or typed in by staff. The WebSocket is opened with a one-time ticket, so the
// token is never part of any URL the gateway (or a proxy) sees.
"use strict";

(function () {
  const TEXTS = window.KIOSK_TEXTS;
  const TOKEN_KEY = "storegw.kiosk.token";
  const LANG_KEY = "storegw.kiosk.lang";
  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    lang: localStorage.getItem(LANG_KEY) || null,
    info: null,
    mode: "online",
    wsUp: false,
    ws: null,
    retry: 0,
    reconnectTimer: null,
    member: null,
    memberCached: false,
    appointments: null,
    redeemed: new Map(),   // coupon_id -> "accepted" | "pending"
    checkedIn: new Map(),  // appointment_id -> "confirmed" | "pending"
    message: null,
    idleTimer: null,
    busy: 0,
    joinId: null,          // one join per filled-in form: a retry is the same join
  };

  // --- text -------------------------------------------------------------------------------

  function t(key, params) {
    const table = TEXTS[state.lang || "zh"] || TEXTS.zh;
    let text = table[key];
    if (text === undefined) text = TEXTS.en[key] !== undefined ? TEXTS.en[key] : key;
    for (const [name, value] of Object.entries(params || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  function locale() {
    return state.lang === "en" ? "en-GB" : "zh-CN";
  }

  function money(value, currency) {
    const amount = Number(value);
    if (!isFinite(amount) || !currency) return String(value);
    try {
      return new Intl.NumberFormat(locale(), { style: "currency", currency }).format(amount);
    } catch (e) {
      return amount.toFixed(2) + " " + currency;
    }
  }

  function when(iso, withTime) {
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    const opts = withTime
      ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
      : { year: "numeric", month: "short", day: "numeric" };
    return new Intl.DateTimeFormat(locale(), opts).format(d);
  }

  function setLang(lang) {
    state.lang = lang === "en" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, state.lang);
    document.documentElement.lang = state.lang === "en" ? "en" : "zh-CN";
    for (const el of document.querySelectorAll("[data-i18n]")) {
      el.textContent = t(el.dataset.i18n);
    }
    const toggle = $("lang-toggle");
    toggle.textContent = t("lang.other");
    toggle.lang = state.lang === "en" ? "zh-CN" : "en";
    document.title = t("brand");
    renderAll();
  }

  // --- screens, banners, toasts -------------------------------------------------------------

  function show(screen) {
    const screens = ["screen-loading", "screen-setup", "screen-welcome", "screen-member",
      "screen-join", "screen-joined"];
    for (const id of screens) {
      $(id).hidden = id !== screen;
    }
    document.body.dataset.screen = screen;
  }

  let toastTimer = null;
  function toast(text, kind) {
    const el = $("toast");
    el.textContent = text;
    el.className = "toast " + (kind || "info");
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, 6000);
  }

  // A member action refused with 403: the gateway no longer knows this member at this kiosk
  // (its session ended); start over rather than show a refusal the member cannot act on.
  function memberRefused(status) {
    if (status !== 403 || !state.member) return false;
    endMember();
    toast(t("scan.again"), "error");
    return true;
  }

  function errorText(doc) {
    const code = doc && doc.error && doc.error.code;
    const key = "error." + code;
    const table = TEXTS[state.lang || "zh"];
    return code && table[key] !== undefined ? t(key) : t("error.default");
  }

  function busy(on) {
    state.busy += on ? 1 : -1;
    $("busy").hidden = state.busy <= 0;
  }

  function renderBanners() {
    const banner = $("offline-banner");
    const down = !state.wsUp;
    const offline = down || state.mode === "offline";
    banner.hidden = !offline || !state.info;
    banner.dataset.reason = down ? "gateway" : "cloud";
    $("offline-text").textContent = down ? t("offline.gateway") : t("offline.cloud");
    document.body.classList.toggle("is-offline", offline);
    $("link-dot").className = "dot " + (down ? "down" : state.mode);
    $("link-text").textContent = state.info
      ? t(down ? "link.down" : "link." + state.mode, { kiosk: state.info.kiosk })
      : t("link.none");
    const msg = state.message;
    const live = msg && (!msg.expires_at || new Date(msg.expires_at) > new Date());
    $("message-banner").hidden = !live;
    $("message-text").textContent = live ? msg.text[state.lang] || msg.text.en : "";
  }

  function setMode(mode) {
    if (mode !== "online" && mode !== "offline") return;
    state.mode = mode;
    linkChanged();
  }

  // What can be done depends on the link (claiming needs the cloud): redraw both.
  function linkChanged() {
    renderBanners();
    if (state.member) renderMember();
  }

  // --- the API ----------------------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + state.token };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (e) {
      return { status: 0, doc: { error: { code: "network", message: String(e) } } };
    }
    let doc = null;
    try {
      doc = await resp.json();
    } catch (e) {
      doc = { error: { code: "internal", message: "not JSON" } };
    }
    // An answer's own "mode" says how that answer was made, not how the link is now: one
    // asked before the link dropped can arrive after the socket said so. The link state comes
    // from the socket alone (hello, then a push on every change).
    if (resp.status === 401) refused("setup.refused");
    return { status: resp.status, doc };
  }

  function newId() {
    // crypto.randomUUID needs a secure context; a LAN kiosk on http:// has none.
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "k-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function till() {
    return state.info.kiosk;
  }

  // --- start, token, socket ---------------------------------------------------------------

  function takeToken() {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return localStorage.getItem(TOKEN_KEY);
  }

  function refused(key) {
    localStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.info = null;
    closeSocket();
    endMember();
    const err = $("setup-error");
    err.dataset.key = key;
    err.textContent = t(key);
    err.hidden = false;
    renderBanners();
    show("screen-setup");
  }

  async function start() {
    state.token = takeToken();
    if (!state.token) {
      show("screen-setup");
      return;
    }
    show("screen-loading");
    const { status, doc } = await api("GET", "/v1/kiosk");
    if (status === 401) return;
    if (status === 403) {
      refused("setup.not_kiosk");
      return;
    }
    if (status !== 200) {
      // The gateway is not reachable yet: try again, showing the welcome screen meanwhile.
      state.wsUp = false;
      setTimeout(start, 3000);
      return;
    }
    state.info = doc;
    state.message = doc.message;
    if (!localStorage.getItem(LANG_KEY)) setLang(doc.language);
    $("setup-error").hidden = true;
    $("kiosk-name").textContent = doc.kiosk;
    setMode(doc.mode);
    show("screen-welcome");
    renderAll();
    connect();
  }

  function closeSocket() {
    clearTimeout(state.reconnectTimer);
    if (state.ws) {
      state.ws.onclose = null;
      state.ws.close();
      state.ws = null;
    }
    state.wsUp = false;
  }

  async function connect() {
    clearTimeout(state.reconnectTimer);
    if (!state.token) return;
    const { status, doc } = await api("POST", "/v1/kiosk/ws-ticket");
    if (status === 401 || status === 403) return;
    if (status !== 200) {
      scheduleReconnect();
      return;
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = proto + "//" + location.host + "/v1/kiosk/ws?ticket=" + encodeURIComponent(doc.ticket);
    const ws = new WebSocket(url);
    state.ws = ws;
    ws.onopen = () => {
      state.wsUp = true;
      state.retry = 0;
      linkChanged();
    };
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      onPush(msg);
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.wsUp = false;
      if (event.code === 4401) {
        refused("setup.refused");  // the token was revoked while the page was open
        return;
      }
      linkChanged();
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    state.wsUp = false;
    linkChanged();
    const delay = Math.min(10000, 500 * Math.pow(2, state.retry++));
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function onPush(msg) {
    switch (msg.type) {
      case "hello":
        state.info = Object.assign({}, state.info, msg);
        state.message = msg.message;
        setMode(msg.mode);
        renderWelcome();
        break;
      case "mode":
        setMode(msg.mode);
        break;
      case "message":
        state.message = msg.message;
        renderBanners();
        break;
      case "device":
        if (state.info) {
          for (const d of state.info.devices) if (d.device_id === msg.device_id) d.state = msg.state;
          renderWelcome();
        }
        break;
      case "scan":
        onScan(msg.code);
        break;
      case "tap":
        identify({ by: msg.by, uid: msg.uid });
        break;
      default:
        break;
    }
  }

  // --- what a member does -----------------------------------------------------------------

  // Left alone, the page goes back to the welcome screen: a member's, or a half-filled join.
  function touch() {
    clearTimeout(state.idleTimer);
    const screen = document.body.dataset.screen;
    const away = state.member || screen === "screen-join" || screen === "screen-joined";
    if (away && state.info) {
      state.idleTimer = setTimeout(endMember, state.info.idle_reset_s * 1000);
    }
  }

  function endMember() {
    clearTimeout(state.idleTimer);
    clearJoin();
    state.member = null;
    state.appointments = null;
    state.redeemed.clear();
    state.checkedIn.clear();
    closeConfirm(false);
    if (state.info) show("screen-welcome");
  }

  function onScan(code) {
    if (!state.info) return;
    if (code.startsWith("SGM1:")) {
      identify({ by: "qr", code });
    } else if (code.startsWith("SGC1:")) {
      if (!state.member) {
        toast(t("scan.need_member"), "error");
        return;
      }
      redeem({ token: code, title: "", value: null, currency: null, coupon_id: null });
    } else {
      toast(t("scan.not_member"), "error");
    }
  }

  async function identify(credentials) {
    if (!state.info) return;
    closeConfirm(false);
    busy(true);
    try {
      const { status, doc } = await api("POST", "/v1/identify", Object.assign({ till: till() }, credentials));
      if (status !== 200) {
        toast(errorText(doc), "error");
        return;
      }
      await showMember(doc);
    } finally {
      busy(false);
    }
  }

  // A member identified (or just joined) at this kiosk: their screen, appointments after.
  async function showMember(doc) {
    state.redeemed.clear();
    state.checkedIn.clear();
    state.member = doc.member;
    state.memberCached = doc.cached;
    state.appointments = null;
    show("screen-member");
    renderMember();
    touch();
    await loadAppointments();
  }

  async function refreshMember() {
    if (!state.member) return;
    const id = state.member.member_id;
    const { status, doc } = await api("GET", "/v1/members/" + encodeURIComponent(id));
    if (memberRefused(status)) return;
    if (status === 200 && state.member && state.member.member_id === id) {
      state.member = doc.member;
      state.memberCached = doc.cached;
      renderMember();
    }
  }

  async function loadAppointments() {
    if (!state.member) return;
    const id = state.member.member_id;
    const { status, doc } = await api("GET", "/v1/members/" + encodeURIComponent(id) + "/appointments");
    if (status === 200 && state.member && state.member.member_id === id) {
      state.appointments = doc.appointments;
      renderMember();
    }
  }

  let confirmResolve = null;
  function ask(text) {
    $("confirm-text").textContent = text;
    $("confirm").hidden = false;
    return new Promise((resolve) => { confirmResolve = resolve; });
  }
  function closeConfirm(answer) {
    $("confirm").hidden = true;
    if (confirmResolve) {
      const resolve = confirmResolve;
      confirmResolve = null;
      resolve(answer);
    }
  }

  async function redeem(coupon) {
    touch();
    const value = coupon.value ? money(coupon.value, coupon.currency) : "";
    if (coupon.coupon_id && !(await ask(t("confirm.redeem", { title: coupon.title, value })))) return;
    busy(true);
    try {
      const { status, doc } = await api("POST", "/v1/coupons/redeem", {
        till: till(),
        coupon: coupon.token,
        member_id: state.member.member_id,
        redemption_id: newId(),
      });
      if (status !== 200) {
        if (!memberRefused(status)) toast(errorText(doc), "error");
        return;
      }
      state.redeemed.set(doc.coupon_id, doc.status);
      const title = doc.title || coupon.title || doc.coupon_id;
      const key = doc.status === "pending" ? "done.redeemed_offline" : "done.redeemed";
      toast(t(key, { title, value: money(doc.value, doc.currency) }), "ok");
      await refreshMember();
    } finally {
      busy(false);
    }
  }

  async function claim(offer) {
    touch();
    const value = money(offer.value, offer.currency);
    if (!(await ask(t("confirm.claim", { title: offer.title, value })))) return;
    busy(true);
    try {
      const { status, doc } = await api("POST", "/v1/coupons/claim", {
        till: till(),
        member_id: state.member.member_id,
        offer_id: offer.offer_id,
        claim_id: newId(),
      });
      if (status !== 200) {
        if (!memberRefused(status)) toast(errorText(doc), "error");
        return;
      }
      toast(t("done.claimed", { title: doc.coupon.title }), "ok");
      await refreshMember();
    } finally {
      busy(false);
    }
  }

  async function checkin(appointment) {
    touch();
    const question = t("confirm.checkin", {
      service: appointment.service,
      time: when(appointment.starts_at, true),
    });
    if (!(await ask(question))) return;
    busy(true);
    try {
      const { status, doc } = await api("POST", "/v1/appointments/checkin", {
        till: till(),
        appointment_id: appointment.appointment_id,
        member_id: state.member.member_id,
        checkin_id: newId(),
      });
      if (status !== 200) {
        if (!memberRefused(status)) toast(errorText(doc), "error");
        return;
      }
      state.checkedIn.set(appointment.appointment_id, doc.status);
      toast(t(doc.status === "pending" ? "done.checked_in_offline" : "done.checked_in"), "ok");
      await loadAppointments();
    } finally {
      busy(false);
    }
  }

  // --- joining (入会) ---------------------------------------------------------------------------

  function clearJoin() {
    state.joinId = null;
    for (const id of ["join-phone", "join-name"]) $(id).value = "";
    for (const id of ["join-consent", "join-marketing"]) $(id).checked = false;
    $("join-submit").disabled = true;
    $("join-error").hidden = true;
  }

  function startJoin() {
    if (!state.info) return;
    endMember();
    $("toast").hidden = true;
    state.joinId = newId();
    show("screen-join");
    touch();
    $("join-phone").focus();
  }

  function joinError(text) {
    const err = $("join-error");
    err.textContent = text;
    err.hidden = false;
  }

  async function submitJoin() {
    touch();
    const phone = $("join-phone").value.replace(/[\s()-]/g, "");
    if (!/^\+[1-9]\d{6,14}$/.test(phone)) return joinError(t("join.bad_phone"));
    if (!$("join-consent").checked) return joinError(t("join.needs_consent"));
    const body = {
      till: till(),
      join_id: state.joinId || (state.joinId = newId()),
      phone,
      consent: true,
      marketing: $("join-marketing").checked,
    };
    const name = $("join-name").value.trim();
    if (name) body.name = name;
    busy(true);
    try {
      const { status, doc } = await api("POST", "/v1/joins", body);
      if (status !== 200) {
        joinError(errorText(doc));
        return;
      }
      clearJoin();
      if (doc.status === "pending") {
        // Offline: the provisional member the till and this kiosk use until the cloud is back.
        $("joined-id").textContent = doc.member_id;
        show("screen-joined");
        touch();
        return;
      }
      toast(t(doc.existing ? "join.existing" : "join.welcome"), "ok");
      // The new member is this kiosk's member now: show them, as after a scan.
      const got = await api("GET", "/v1/members/" + encodeURIComponent(doc.member_id));
      if (got.status === 200) await showMember(got.doc);
      else show("screen-welcome");
    } finally {
      busy(false);
    }
  }

  // --- rendering ----------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(text, className, onClick, disabled) {
    const b = el("button", className, text);
    b.type = "button";
    b.disabled = !!disabled;
    b.addEventListener("click", onClick);
    return b;
  }

  function renderAll() {
    renderBanners();
    renderWelcome();
    if (state.member) renderMember();
    const err = $("setup-error");
    if (!err.hidden && err.dataset.key) err.textContent = t(err.dataset.key);
  }

  function renderWelcome() {
    const info = state.info;
    if (!info) return;
    const devices = info.devices
      .map((d) => d.device_id + " (" + t("device." + d.state) + ")")
      .join(", ");
    $("welcome-devices").textContent = devices ? t("welcome.devices", { devices }) : "";
  }

  function renderMember() {
    const m = state.member;
    if (!m) return;
    $("member-name").textContent = m.name || t("member.unknown_name");
    $("member-id").textContent = m.member_id;
    const tier = $("member-tier");
    tier.textContent = m.tier ? t("tier." + m.tier) : "";
    tier.hidden = !m.tier;
    tier.dataset.tier = m.tier || "";
    $("member-cached").hidden = !state.memberCached;
    $("member-points").textContent =
      typeof m.points === "number" ? new Intl.NumberFormat(locale()).format(m.points) : "–";
    $("member-balance").textContent = m.balance ? money(m.balance, m.currency) : "–";

    const coupons = $("coupons");
    coupons.replaceChildren();
    for (const c of m.coupons || []) {
      const li = el("li", "item");
      li.dataset.couponId = c.coupon_id;
      const text = el("div", "text");
      text.append(el("div", "title", c.title || c.coupon_id));
      text.append(el("div", "sub", t("coupons.expires", { date: when(c.expires, false) })));
      li.append(text, el("div", "amount", money(c.value, c.currency)));
      const done = state.redeemed.get(c.coupon_id);
      if (done) {
        li.classList.add("used");
        li.append(el("span", "badge", t(done === "pending" ? "coupons.redeemed_pending" : "coupons.redeemed")));
      } else {
        li.append(button(t("coupons.redeem"), "primary redeem", () => redeem(c)));
      }
      coupons.append(li);
    }
    $("coupons-empty").hidden = (m.coupons || []).length > 0;

    const offers = $("offers");
    offers.replaceChildren();
    const offline = state.mode === "offline" || !state.wsUp;
    for (const o of m.offers || []) {
      const li = el("li", "item");
      li.dataset.offerId = o.offer_id;
      const text = el("div", "text");
      text.append(el("div", "title", o.title));
      text.append(el("div", "sub", t("offers.ends", { date: when(o.ends_at, false) })));
      li.append(text, el("div", "amount", money(o.value, o.currency)));
      li.append(
        button(offline ? t("offers.needs_online") : t("offers.claim"), "secondary claim", () => claim(o), offline)
      );
      offers.append(li);
    }
    $("offers-empty").hidden = (m.offers || []).length > 0;

    const list = $("appointments");
    list.replaceChildren();
    const appts = state.appointments || m.appointments || [];
    for (const a of appts) {
      const li = el("li", "item");
      li.dataset.appointmentId = a.appointment_id;
      const text = el("div", "text");
      text.append(el("div", "title", a.service));
      text.append(el("div", "sub", when(a.starts_at, true)));
      li.append(text);
      const local = state.checkedIn.get(a.appointment_id);
      const here = state.info && a.store_id === state.info.store_id;
      let status = a.status;
      let pending = !!a.pending;
      if (local && status === "booked") {
        status = "checked_in";
        pending = local === "pending";
      }
      li.dataset.status = status;
      if (!here) {
        li.append(el("span", "badge muted", t("appointments.other_store")));
      } else if (status === "booked") {
        li.append(button(t("appointments.checkin"), "primary checkin", () => checkin(a)));
      } else {
        const key = status === "checked_in" && pending ? "appointments.pending" : "appointments." + status;
        li.append(el("span", "badge " + status, t(key)));
      }
      list.append(li);
    }
    $("appointments-empty").hidden = appts.length > 0;

    // Service packages (次卡): what is left, read-only here (a session is used at a till).
    const packages = $("packages");
    packages.replaceChildren();
    for (const p of m.packages || []) {
      const li = el("li", "item");
      li.dataset.packageId = p.package_id;
      const text = el("div", "text");
      text.append(el("div", "title", p.service));
      text.append(el("div", "sub", t("packages.expires", { date: when(p.expires, false) })));
      li.append(text, el("div", "amount", t("packages.left", { n: Math.max(p.left, 0) })));
      packages.append(li);
    }
    $("packages-empty").hidden = (m.packages || []).length > 0;
  }

  // --- wiring ---------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    setLang(state.lang || "zh");
    $("lang-toggle").addEventListener("click", () => {
      setLang(state.lang === "en" ? "zh" : "en");
      touch();
    });
    $("done").addEventListener("click", endMember);
    $("join-start").addEventListener("click", startJoin);
    $("join-cancel").addEventListener("click", endMember);
    $("joined-done").addEventListener("click", endMember);
    $("join-consent").addEventListener("change", () => {
      $("join-submit").disabled = !$("join-consent").checked;
      touch();
    });
    $("join-form").addEventListener("submit", (event) => {
      event.preventDefault();
      submitJoin();
    });
    $("confirm-yes").addEventListener("click", () => closeConfirm(true));
    $("confirm-no").addEventListener("click", () => closeConfirm(false));
    $("setup-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      $("token-input").value = "";
      localStorage.setItem(TOKEN_KEY, value);
      start();
    });
    for (const kind of ["pointerdown", "keydown"]) document.addEventListener(kind, touch);
    // Staff may open the kiosk URL with a new #token= on a page already showing: take it.
    window.addEventListener("hashchange", () => {
      if (/(?:^#|&)token=/.test(location.hash)) {
        closeSocket();
        endMember();
        start();
      }
    });
    setInterval(renderBanners, 5000);  // a message's expiry
    start();
  });
})();
