/* Quitclaim review dashboard: plain JavaScript, no build step, no third parties.

   Everything shown comes from the API of the same origin, called with the
   person's sign-in token (the user pool's hosted sign-in, authorization code
   with PKCE; the token is kept in memory only) or with an API key (kept in
   sessionStorage: this tab only). The tenant is the token's or the key's;
   nothing here can name another one. */
"use strict";

(() => {
  const TEXT = window.QC_TEXT;
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const KEY_STORE = "qc.key";
  // Only for the hosted sign-in's round trip (this tab, removed on return):
  // the PKCE verifier and state, never a token.
  const PKCE_STORE = "qc.pkce";
  const POOL = (() => {
    const meta = document.querySelector('meta[name="qc-signin"]');
    const clientId = meta?.dataset.clientId;
    return clientId ? { clientId, url: meta.dataset.url } : null;
  })();
  const LANG_STORE = "qc.lang";
  const VIEWS = ["queue", "people", "overview", "audit"];
  // Which roles hold the capabilities the views need (quitclaim/domain/access.py;
  // the API refuses the rest anyway): "read" for the queue, people and overview,
  // "audit" for the audit trail.
  const CAN = { read: ["admin", "reviewer", "dpo"], audit: ["admin", "dpo", "auditor"] };
  const can = (capability) => Boolean(state.me) && CAN[capability].includes(state.me.role);

  const state = {
    key: null,
    user: null, // a signed-in person: {email} from their ID token (null: an API key)
    me: null,
    lang: "en",
    view: null,
    policy: null,
    people: new Map(), // subject_id -> person (subject, consent_status, consents)
    peopleList: [],
    queue: [],
    queueMore: false,
    selected: null,
    record: null,
    thumbs: new Map(), // asset_id -> Promise of {src, width, height}
    personId: null,
    overview: null,
    bill: null,
    audit: [], // the audit trail's events listed so far (ids, codes, actors)
    auditCursor: null,
  };

  // ---------------------------------------------------------------- words

  function t(key, ...args) {
    const value = TEXT[state.lang][key] ?? TEXT.en[key] ?? key;
    return typeof value === "function" ? value(...args) : value;
  }

  function applyText() {
    document.documentElement.lang = state.lang;
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-aria]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nAria));
    }
    const view = state.view ? t(`nav${cap(state.view)}`) : t("signInTitle");
    document.title = `${view} · Quitclaim`;
    $("lang").value = state.lang;
    if (state.me) $("who").textContent = t("who", state.me);
  }

  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

  function fmtDate(iso) {
    if (!iso) return "";
    const options = { day: "numeric", month: "long", year: "numeric" };
    return new Intl.DateTimeFormat(t("locale"), options).format(new Date(iso));
  }

  function fmtDateTime(iso) {
    if (!iso) return "";
    const options = { dateStyle: "long", timeStyle: "short" };
    return new Intl.DateTimeFormat(t("locale"), options).format(new Date(iso));
  }

  function fmtMonth(month, options = { month: "short", year: "numeric" }) {
    const [year, number] = month.split("-").map(Number);
    const format = new Intl.DateTimeFormat(t("locale"), { ...options, timeZone: "UTC" });
    return format.format(new Date(Date.UTC(year, number - 1, 1)));
  }

  // ---------------------------------------------------------------- DOM

  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function svg(tag, attrs = {}, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.setAttribute("class", value);
      else if (name === "text") el.textContent = value;
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
  }

  function append(el, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function say(message) {
    const box = $("status");
    box.textContent = "";
    // A new node each time, so screen readers announce a repeated message too.
    window.setTimeout(() => box.append(h("span", { text: message })), 30);
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function request(method, path, { json, body, type } = {}) {
    const headers = { Authorization: `Bearer ${state.key}`, Accept: "application/json" };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (type) {
      headers["Content-Type"] = type;
    }
    const response = await fetch(path, { method, headers, body, cache: "no-store" });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const error = new ApiError(response.status, data?.error, data?.message || response.statusText);
      if (response.status === 401 && state.me) signOut(t("signedOut"));
      throw error;
    }
    return { status: response.status, data };
  }

  const api = async (method, path, options) => (await request(method, path, options)).data;

  function fail(error) {
    if (error instanceof ApiError && error.status === 401) return;
    say(t("failed", error.message));
  }

  // ---------------------------------------------------------------- sign in

  async function signIn(key, user = null) {
    state.key = key;
    try {
      state.me = await api("GET", "/me");
    } catch (error) {
      state.key = null;
      throw error;
    }
    if (user) {
      // A person: the token stays in this page's memory; show who they are.
      state.user = user;
      state.me = { ...state.me, label: user.email || state.me.person };
    } else {
      sessionStorage.setItem(KEY_STORE, key);
    }
    document.body.classList.toggle("is-admin", state.me.role === "admin");
    document.body.classList.toggle("can-read", can("read"));
    document.body.classList.toggle("can-audit", can("audit"));
    $("nav").hidden = false;
    $("signout").hidden = false;
    applyText();
    // An auditor reads the audit trail only: no policy, no people to load.
    if (can("read")) [state.policy] = await Promise.all([api("GET", "/policy"), loadPeople()]);
    route();
  }

  function signOut(message, { leavePool = false } = {}) {
    const wasUser = Boolean(state.user);
    sessionStorage.removeItem(KEY_STORE);
    Object.assign(state, { key: null, user: null, me: null, view: null, selected: null, record: null });
    if (wasUser && leavePool && POOL) {
      // End the hosted sign-in's session too, then come back here signed out.
      const back = location.origin + location.pathname;
      location.assign(`${POOL.url}/logout?${new URLSearchParams({ client_id: POOL.clientId, logout_uri: back })}`);
    }
    state.thumbs.clear();
    state.people.clear();
    $("nav").hidden = true;
    $("signout").hidden = true;
    $("who").textContent = "";
    document.body.classList.remove("is-admin", "can-read", "can-audit");
    state.audit = [];
    state.auditCursor = null;
    for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== "view-signin";
    $("signin-error").textContent = message || "";
    applyText();
    $("key").focus();
  }

  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    $("signin-error").textContent = "";
    if (!key) {
      $("signin-error").textContent = t("keyRequired");
      $("key").focus();
      return;
    }
    try {
      await signIn(key);
      $("key").value = "";
    } catch (error) {
      $("signin-error").textContent = error.status === 401 ? t("badKey") : t("failed", error.message);
      $("key").focus();
    }
  });

  $("signout").addEventListener("click", () => {
    signOut("", { leavePool: true });
    history.replaceState(null, "", "#");
  });

  $("lang").addEventListener("change", () => {
    state.lang = $("lang").value;
    localStorage.setItem(LANG_STORE, state.lang);
    applyText();
    rerender();
  });

  // ---------------------------------------------------------------- sign in with the pool

  const b64url = (bytes) =>
    btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

  function randomText() {
    return b64url(crypto.getRandomValues(new Uint8Array(32)));
  }

  function claimsOf(jwt) {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  }

  const redirectUri = () => location.origin + location.pathname;

  // Authorization code with PKCE (RFC 7636): off to the hosted sign-in page.
  async function startPoolSignIn() {
    const verifier = randomText();
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    const pending = { verifier, state: randomText() };
    sessionStorage.setItem(PKCE_STORE, JSON.stringify(pending));
    const query = new URLSearchParams({
      response_type: "code",
      client_id: POOL.clientId,
      redirect_uri: redirectUri(),
      scope: "openid email",
      state: pending.state,
      code_challenge: challenge,
      code_challenge_method: "S256",
    });
    location.assign(`${POOL.url}/oauth2/authorize?${query}`);
  }

  // Back from the hosted sign-in with ?code&state: exchange the code for tokens.
  async function finishPoolSignIn(params) {
    const pending = JSON.parse(sessionStorage.getItem(PKCE_STORE) || "null");
    sessionStorage.removeItem(PKCE_STORE);
    history.replaceState(null, "", location.pathname + location.hash);
    if (!pending || params.get("state") !== pending.state) throw new Error("state");
    const response = await fetch(`${POOL.url}/oauth2/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: POOL.clientId,
        code: params.get("code"),
        redirect_uri: redirectUri(),
        code_verifier: pending.verifier,
      }),
      cache: "no-store",
    });
    if (!response.ok) throw new Error(`token ${response.status}`);
    const tokens = await response.json();
    // The ID token names the tenant and the person (docs/sign-in.md).
    await signIn(tokens.id_token, { email: claimsOf(tokens.id_token).email || "" });
  }

  if (POOL) {
    $("signin-pool").hidden = false;
    $("signin-account").addEventListener("click", () => {
      startPoolSignIn().catch(() => ($("signin-error").textContent = t("signInFailed")));
    });
  }

  // ---------------------------------------------------------------- views

  function route() {
    if (!state.me) return;
    const wanted = location.hash.replace("#", "");
    const open = VIEWS.filter((view) => can(view === "audit" ? "audit" : "read"));
    show(open.includes(wanted) ? wanted : open[0]);
  }

  window.addEventListener("hashchange", route);

  async function show(view) {
    const changed = state.view !== view;
    state.view = view;
    for (const section of document.querySelectorAll(".view")) {
      section.hidden = section.id !== `view-${view}`;
    }
    for (const link of document.querySelectorAll("#nav a")) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    applyText();
    if (changed) $(`${view}-title`).focus();
    try {
      if (view === "queue") await loadQueue();
      if (view === "people") await loadPeople().then(renderPeople);
      if (view === "overview") await loadOverview();
      if (view === "audit") await loadAudit({ fresh: true });
    } catch (error) {
      fail(error);
    }
  }

  function rerender() {
    if (!state.me) return;
    fillPersonFilter();
    if (state.view === "queue") {
      renderQueue();
      if (state.record) renderDetail();
    }
    if (state.view === "people") {
      renderPeople();
      if (state.personId) renderPerson();
    }
    if (state.view === "overview" && state.overview) renderOverview();
    if (state.view === "overview") renderBill();
    if (state.view === "audit") renderAudit();
  }

  // ---------------------------------------------------------------- people data

  async function loadPeople() {
    const all = [];
    let cursor = null;
    for (let page = 0; page < 20; page += 1) {
      const query = new URLSearchParams({ limit: "100" });
      if (cursor) query.set("cursor", cursor);
      const result = await api("GET", `/people?${query}`);
      all.push(...result.items);
      cursor = result.next_cursor;
      if (!cursor) break;
    }
    all.sort((a, b) => a.subject.display_name.localeCompare(b.subject.display_name));
    state.peopleList = all;
    state.people = new Map(all.map((p) => [p.subject.subject_id, p]));
    fillPersonFilter();
  }

  function fillPersonFilter() {
    const select = $("f-subject");
    const current = select.value;
    select.replaceChildren(h("option", { value: "", text: t("anyone") }));
    for (const person of state.peopleList) {
      select.append(h("option", { value: person.subject.subject_id, text: person.subject.display_name }));
    }
    select.value = state.people.has(current) ? current : "";
  }

  const nameOf = (subjectId) => state.people.get(subjectId)?.subject.display_name || t("someone");

  function consentOf(subjectId, consentId) {
    return state.people.get(subjectId)?.consents.find((c) => c.consent_id === consentId) || null;
  }

  const purposeName = (p) => t(`p_${p}`) === `p_${p}` ? p : t(`p_${p}`);

  // ---------------------------------------------------------------- reasons in words

  function faceKind(face) {
    if (!face.identifiable) return "small";
    if (face.verdict === "valid") return "ok";
    switch (face.reason) {
      case "unknown_face":
        return "unknown";
      case "consent_expired":
        return "expired";
      case "consent_revoked":
        return "revoked";
      case "review_required":
      case "face_not_matchable":
        return "review";
      default:
        return "scope";
    }
  }

  function faceSentence(face, asset) {
    if (!face.identifiable) return t("why_small");
    const name = face.subject_id ? nameOf(face.subject_id) : null;
    const consent = face.subject_id && face.consent_id ? consentOf(face.subject_id, face.consent_id) : null;
    if (face.verdict === "valid") return t("why_valid", name, consent ? fmtDate(consent.expires_at) : "");
    switch (face.reason) {
      case "unknown_face":
        return t("why_unknown_face");
      case "review_required":
        return t("why_review_required");
      case "face_not_matchable":
        return t("why_face_not_matchable");
      case "no_consent":
        return t("why_no_consent", name);
      case "consent_expired":
        return t("why_consent_expired", name, consent ? fmtDate(consent.expires_at) : "");
      case "consent_revoked":
        return t("why_consent_revoked", name, consent ? fmtDate(consent.revoked_at) : "");
      case "consent_not_yet_valid":
        return t("why_consent_not_yet_valid", name, consent ? fmtDate(consent.valid_from) : "");
      case "out_of_scope": {
        const covered = consent ? consent.purposes.map(purposeName).join(", ") : "—";
        return t("why_out_of_scope", name, purposeName(asset.purpose), covered);
      }
      default:
        return t("why_unknown_reason", face.reason || "");
    }
  }

  /** One sentence per distinct reason a face holds the image back. */
  function assetSentences(asset) {
    const sentences = [];
    for (const face of asset.faces) {
      if (!face.reason) continue;
      const sentence = faceSentence(face, asset);
      if (!sentences.includes(sentence)) sentences.push(sentence);
    }
    if (!sentences.length) for (const code of asset.reasons) sentences.push(t(`rc_${code}`));
    return sentences;
  }

  // ---------------------------------------------------------------- previews

  function thumbnail(asset) {
    if (!["quarantined", "approved"].includes(asset.status)) return Promise.resolve(null);
    const cacheKey = `${asset.asset_id}:${asset.version}`;
    if (!state.thumbs.has(cacheKey)) {
      const loading = api("GET", `/assets/${asset.asset_id}/thumbnail`).then((p) => ({
        src: `data:${p.content_type};base64,${p.image_base64}`,
        width: p.width,
        height: p.height,
      }));
      loading.catch(() => state.thumbs.delete(cacheKey));
      state.thumbs.set(cacheKey, loading);
    }
    return state.thumbs.get(cacheKey);
  }

  /** The image with its face boxes: an <img> and an SVG overlay in the image's own pixels. */
  function picture(asset, thumb, alt) {
    const box = h("div", { class: "image-box" });
    if (!thumb) return box;
    box.append(h("img", { src: thumb.src, alt }));
    const stroke = Math.max(2, Math.round(thumb.width / 180));
    const font = Math.max(12, Math.round(thumb.width / 28));
    const overlay = svg("svg", {
      viewBox: `0 0 ${thumb.width} ${thumb.height}`,
      "aria-hidden": "true",
      focusable: "false",
      preserveAspectRatio: "none",
    });
    asset.faces.forEach((face, index) => {
      const [left, top, right, bottom] = face.box;
      const kind = faceKind(face);
      overlay.append(
        svg("rect", {
          class: `box k-${kind}`,
          x: left,
          y: top,
          width: right - left,
          height: bottom - top,
          "stroke-width": stroke,
        }),
        svg("rect", { class: `tag k-${kind}`, x: left, y: Math.max(0, top - font * 1.3), width: font * 1.4, height: font * 1.3 }),
        svg("text", { x: left + font * 0.25, y: Math.max(0, top - font * 1.3) + font, "font-size": font }, String(index + 1)),
      );
    });
    box.append(overlay);
    return box;
  }

  // ---------------------------------------------------------------- the queue

  function filterQuery() {
    const form = new FormData($("filters"));
    const query = new URLSearchParams({ limit: "100", status: form.get("status") || "quarantined" });
    for (const name of ["reason", "subject"]) if (form.get(name)) query.set(name, form.get(name));
    if (form.get("since")) query.set("since", `${form.get("since")}T00:00:00Z`);
    if (form.get("until")) query.set("until", `${form.get("until")}T23:59:59Z`);
    return query;
  }

  async function loadQueue() {
    $("queue-count").textContent = t("loading");
    const page = await api("GET", `/assets?${filterQuery()}`);
    state.queue = page.items;
    state.queueMore = Boolean(page.next_cursor);
    renderQueue();
    if (state.selected) await loadDetail(state.selected, { focus: false });
  }

  function renderQueue() {
    const list = $("queue-list");
    const n = state.queue.length;
    $("queue-count").textContent = n ? (state.queueMore ? t("countMore", n) : t("count", n)) : t("empty");
    list.replaceChildren(
      ...state.queue.map((asset) => {
        const thumbSlot = h("span", { class: "thumb" });
        const button = h(
          "button",
          {
            type: "button",
            class: "item",
            "data-id": asset.asset_id,
            "aria-current": asset.asset_id === state.selected ? "true" : null,
            onclick: () => select(asset.asset_id),
          },
          thumbSlot,
          h(
            "span",
            { class: "item-text" },
            h("strong", { class: "path", text: asset.path }),
            h("span", { class: `status s-${asset.status}`, text: t(`st_${asset.status}`) }),
            ...assetSentences(asset).map((s) => h("span", { class: "reason", text: s })),
          ),
        );
        thumbnail(asset)
          .then((thumb) => thumbSlot.replaceChildren(picture(asset, thumb, "")))
          .catch(() => {});
        return h("li", {}, button);
      }),
    );
  }

  $("queue-list").addEventListener("keydown", (event) => {
    const items = [...$("queue-list").querySelectorAll("button.item")];
    const at = items.indexOf(document.activeElement);
    if (at < 0) return;
    const next = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1, j: at + 1, k: at - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    items[Math.max(0, Math.min(items.length - 1, next))].focus();
  });

  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadQueue().catch(fail);
  });

  $("filters").addEventListener("reset", () => {
    window.setTimeout(() => loadQueue().catch(fail), 0);
  });

  async function select(assetId) {
    state.selected = assetId;
    for (const button of $("queue-list").querySelectorAll("button.item")) {
      if (button.dataset.id === assetId) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
    await loadDetail(assetId, { focus: true }).catch(fail);
  }

  async function loadDetail(assetId, { focus }) {
    state.record = await api("GET", `/assets/${assetId}`);
    renderDetail();
    $("detail").hidden = false;
    if (focus) $("detail-title").focus();
  }

  function renderDetail() {
    const asset = state.record;
    $("detail-title").textContent = asset.path;
    $("detail-status").textContent = t("statusLine", t(`st_${asset.status}`), purposeName(asset.purpose), fmtDateTime(asset.decided_at));
    $("detail-status").className = `detail-status s-${asset.status}`;
    const slot = $("detail-image");
    slot.replaceChildren();
    thumbnail(asset)
      .then((thumb) => {
        if (state.record === asset) slot.replaceChildren(picture(asset, thumb, asset.path));
      })
      .catch(fail);

    const faces = $("detail-faces");
    faces.replaceChildren(
      ...(asset.faces.length
        ? asset.faces.map((face, index) =>
            h(
              "li",
              { class: `face k-${faceKind(face)}` },
              h("span", { class: "swatch", "aria-hidden": "true" }),
              h("span", {}, `${t("faceN", index + 1)}: ${faceSentence(face, asset)}`),
            ),
          )
        : [h("li", { text: t("noFaces") })]),
    );

    // Four eyes: a request waits for a second, different person (one person's keys count once).
    const pending = asset.review?.pending_release;
    const mine = isMine(pending);
    const redaction = asset.review?.pending_redaction;
    const reassignment = asset.review?.pending_reassign;
    const waiting = [
      pending
        ? mine
          ? t("pendingMine", fmtDateTime(pending.at))
          : t("pendingOther", pending.person || pending.by, fmtDateTime(pending.at))
        : "",
      redaction ? t("pendingRedaction", redaction.person || redaction.by, fmtDateTime(redaction.at)) : "",
      reassignment
        ? t("pendingReassign", reassignment.person || reassignment.by, reassignment.face_index + 1, fmtDateTime(reassignment.at))
        : "",
    ].filter(Boolean);
    $("detail-pending").hidden = !waiting.length;
    $("detail-pending").textContent = waiting.join(" ");

    const quarantined = asset.status === "quarantined";
    const release = $("act-release");
    release.hidden = !quarantined;
    release.textContent = pending && !mine ? t("confirmRelease") : t("requestRelease");
    release.disabled = Boolean(mine);
    $("act-keep").hidden = !quarantined;
    // A held image can be published once, as a variant with the blocking faces pixelated.
    $("act-redact").hidden = !quarantined || Boolean(asset.review?.redacted);
    $("act-redact").textContent = redaction && !isMine(redaction) ? t("confirmRedact") : t("redact");
    $("act-redact").disabled = isMine(redaction);
    $("act-reassign").hidden = !(quarantined || asset.status === "approved") || !asset.faces.length;
    $("act-delete").hidden = !(quarantined || asset.status === "approved");
    $("detail-actions").hidden = !(quarantined || asset.status === "approved");

    $("detail-history").replaceChildren(
      ...asset.history.map((entry) =>
        h(
          "li",
          {},
          h("time", { datetime: entry.at, text: fmtDateTime(entry.at) }),
          ` · ${entry.action} · ${entry.actor} → ${t(`st_${entry.status}`)}`,
          entry.justification ? h("q", { text: entry.justification }) : null,
        ),
      ),
    );
  }

  // ---------------------------------------------------------------- actions

  function ask({ title, text, ok, reassign = null, danger = false }) {
    const dialog = $("confirm");
    const opener = document.activeElement;
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = ok;
    $("confirm-ok").className = danger ? "danger" : "";
    $("confirm-error").textContent = "";
    $("justification").value = "";
    $("reassign-fields").hidden = !reassign;
    if (reassign) {
      $("r-face").replaceChildren(
        ...reassign.faces.map((face, index) =>
          h("option", { value: index, text: `${t("faceN", index + 1)}: ${faceSentence(face, reassign)}` }),
        ),
      );
      $("r-person").replaceChildren(
        h("option", { value: "", text: t("nobody") }),
        ...state.peopleList.map((p) => h("option", { value: p.subject.subject_id, text: p.subject.display_name })),
      );
    }
    return new Promise((resolve) => {
      const form = $("confirm-form");
      const finish = (value) => {
        form.removeEventListener("submit", onSubmit);
        $("confirm-cancel").removeEventListener("click", onCancel);
        dialog.removeEventListener("cancel", onCancel);
        dialog.close();
        if (opener && opener.focus) opener.focus();
        resolve(value);
      };
      const onSubmit = (event) => {
        event.preventDefault();
        const justification = $("justification").value.trim();
        if (justification.length < 3) {
          $("confirm-error").textContent = t("justificationShort");
          $("justification").focus();
          return;
        }
        finish({
          justification,
          face: Number($("r-face").value || 0),
          person: $("r-person").value || null,
        });
      };
      const onCancel = (event) => {
        event.preventDefault();
        finish(null);
      };
      form.addEventListener("submit", onSubmit);
      $("confirm-cancel").addEventListener("click", onCancel);
      dialog.addEventListener("cancel", onCancel);
      dialog.showModal();
      (reassign ? $("r-face") : $("justification")).focus();
    });
  }

  // The caller made this request (with this or another of their keys)?
  function isMine(pending) {
    if (!pending || !state.me) return false;
    const norm = (text) => String(text).split(/\s+/).filter(Boolean).join(" ").toLowerCase();
    return norm(pending.person || pending.by) === norm(state.me.person || state.me.key_id);
  }

  async function act(run) {
    try {
      const message = await run();
      if (!message) return;
      say(message);
      await loadQueue();
    } catch (error) {
      fail(error);
    }
  }

  $("act-release").addEventListener("click", () =>
    act(async () => {
      const asset = state.record;
      const confirming = Boolean(asset.review?.pending_release);
      const answer = await ask({
        title: t(confirming ? "dlgConfirmTitle" : "dlgReleaseTitle"),
        text: t(confirming ? "dlgConfirmText" : "dlgReleaseText"),
        ok: t(confirming ? "confirmRelease" : "requestRelease"),
      });
      if (!answer) return null;
      const result = await request("POST", `/assets/${asset.asset_id}/release`, {
        json: { justification: answer.justification },
      });
      return result.status === 202 ? t("doneRequested") : t("doneReleased");
    }),
  );

  $("act-keep").addEventListener("click", () =>
    act(async () => {
      const answer = await ask({ title: t("dlgKeepTitle"), text: t("dlgKeepText"), ok: t("keep") });
      if (!answer) return null;
      await api("POST", `/assets/${state.record.asset_id}/keep`, { json: { justification: answer.justification } });
      return t("doneKept");
    }),
  );

  $("act-redact").addEventListener("click", () =>
    act(async () => {
      const confirming = Boolean(state.record.review?.pending_redaction);
      const answer = await ask({
        title: t("dlgRedactTitle"),
        text: t("dlgRedactText"),
        ok: t(confirming ? "confirmRedact" : "redact"),
      });
      if (!answer) return null;
      const result = await request("POST", `/assets/${state.record.asset_id}/redact`, {
        json: { justification: answer.justification },
      });
      return result.status === 202 ? t("doneRedactRequested") : t("doneRedacted", result.data.dest_key);
    }),
  );

  $("act-reassign").addEventListener("click", () =>
    act(async () => {
      const asset = state.record;
      const answer = await ask({
        title: t("dlgReassignTitle"),
        text: t("dlgReassignText"),
        ok: t("reassign"),
        reassign: asset,
      });
      if (!answer) return null;
      const result = await request("POST", `/assets/${asset.asset_id}/reassign`, {
        json: { face_index: answer.face, subject_id: answer.person, justification: answer.justification },
      });
      return result.status === 202
        ? t("doneReassignRequested")
        : t("doneReassigned", t(`st_${result.data.status}`));
    }),
  );

  $("act-delete").addEventListener("click", () =>
    act(async () => {
      const answer = await ask({ title: t("dlgDeleteTitle"), text: t("dlgDeleteText"), ok: t("delete"), danger: true });
      if (!answer) return null;
      await api("DELETE", `/assets/${state.record.asset_id}`, { json: { justification: answer.justification } });
      return t("doneDeleted");
    }),
  );

  // ---------------------------------------------------------------- people

  function renderPeople() {
    $("people-rows").replaceChildren(
      ...state.peopleList.map((person) => {
        const s = person.subject;
        return h(
          "tr",
          { "aria-current": s.subject_id === state.personId ? "true" : null },
          h("th", { scope: "row", text: s.display_name }),
          h("td", { text: s.external_ref || "—" }),
          h("td", {}, h("span", { class: `badge cs-${person.consent_status}`, text: t(`cs_${person.consent_status}`) })),
          h("td", { text: person.valid_until ? fmtDate(person.valid_until) : "—" }),
          h("td", { text: String(s.templates) }),
          h(
            "td",
            {},
            h("button", {
              type: "button",
              class: "quiet",
              "aria-label": t("openPerson", s.display_name),
              text: t("open"),
              onclick: () => openPerson(s.subject_id),
            }),
          ),
        );
      }),
    );
  }

  function openPerson(subjectId) {
    state.personId = subjectId;
    renderPeople();
    renderPerson();
    $("person").hidden = false;
    $("person-title").focus();
  }

  function renderPerson() {
    const person = state.people.get(state.personId);
    if (!person) {
      $("person").hidden = true;
      return;
    }
    const s = person.subject;
    $("person-title").textContent = s.display_name;
    $("person-summary").textContent = t("summary", t(`cs_${person.consent_status}`), s.templates);
    $("person-consents").replaceChildren(
      ...(person.consents.length
        ? person.consents.map((c) => consentItem(c))
        : [h("li", { text: t("noConsents") })]),
    );
    const purposes = state.policy ? [...state.policy.purposes].sort() : ["web"];
    $("grant-purposes").replaceChildren(
      ...purposes.map((p) =>
        h(
          "div",
          { class: "check" },
          h("input", { type: "checkbox", id: `gp-${p}`, name: "purposes", value: p }),
          h("label", { for: `gp-${p}`, text: purposeName(p) }),
        ),
      ),
    );
    if (!$("g-signer").value || $("g-signer").dataset.for !== s.subject_id) {
      $("g-signer").value = s.display_name;
      $("g-signer").dataset.for = s.subject_id;
    }
  }

  function consentItem(c) {
    const until = c.expires_at ? fmtDate(c.expires_at) : "";
    const evidence = c.evidence;
    return h(
      "li",
      { class: "consent" },
      h("p", {}, h("strong", { text: t("consentLine", c.purposes.map(purposeName).join(", "), fmtDate(c.valid_from), until, t(`c_${c.status}`)) })),
      evidence ? h("p", { text: t("signedBy", evidence.signer, evidence.form_version) }) : null,
      evidence?.document_key
        ? h("p", {}, h("button", {
            type: "button",
            class: "link",
            text: t("openDocument"),
            onclick: () => openDocument(c).catch(fail),
          }))
        : h("p", { class: "hint", text: t("noDocument") }),
      h(
        "ul",
        { class: "events" },
        ...c.history.map((e) =>
          h("li", {}, h("time", { datetime: e.at, text: t("eventLine", t(`ev_${e.event}`), fmtDate(e.at), e.source) })),
        ),
      ),
    );
  }

  async function openDocument(consent) {
    const doc = await api("GET", `/subjects/${consent.subject_id}/consents/${consent.consent_id}/document`);
    const bytes = Uint8Array.from(atob(doc.document_base64), (ch) => ch.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], { type: doc.content_type }));
    const extension = { "application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png" }[doc.content_type] || "bin";
    const link = h("a", { href: url, download: `quitclaim-${consent.consent_id}.${extension}` });
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  async function refreshPeople() {
    await loadPeople();
    renderPeople();
    renderPerson();
  }

  $("grant-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const person = state.people.get(state.personId);
    const purposes = [...form.querySelectorAll("input[name=purposes]:checked")].map((i) => i.value);
    if (!purposes.length) {
      say(t("choosePurpose"));
      form.querySelector("input[name=purposes]")?.focus();
      return;
    }
    if (!form.reportValidity()) return;
    const body = {
      purposes,
      valid_from: $("g-from").value,
      signer: $("g-signer").value.trim(),
      form_version: $("g-form").value.trim(),
    };
    if ($("g-until").value) body.expires_at = $("g-until").value;
    const file = $("g-doc").files[0];
    try {
      if (file) {
        body.document_base64 = await readBase64(file);
        body.document_type = file.type;
      }
      await api("POST", `/subjects/${person.subject.subject_id}/consents`, { json: body });
      form.reset();
      state.thumbs.clear();
      await refreshPeople();
      say(t("doneGranted", person.subject.display_name));
    } catch (error) {
      fail(error);
    }
  });

  $("enrol-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const person = state.people.get(state.personId);
    const file = $("e-photo").files[0];
    if (!file) return void $("e-photo").focus();
    try {
      // The box is required: enrolment records the person's explicit consent to matching.
      const consent = $("e-consent").checked ? "?biometric_consent=true" : "";
      const path = `/subjects/${person.subject.subject_id}/photos${consent}`;
      const subject = await api("POST", path, { body: file, type: file.type });
      event.target.reset();
      await refreshPeople();
      say(t("doneEnrolled", subject.display_name, subject.templates));
    } catch (error) {
      fail(error);
    }
  });

  $("retain-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const person = state.people.get(state.personId);
    if (!event.target.reportValidity()) return;
    const until = $("r-until").value;
    try {
      await api("PUT", `/subjects/${person.subject.subject_id}/retention`, { json: { until } });
      event.target.reset();
      say(t("doneRetained", person.subject.display_name, fmtDate(until)));
    } catch (error) {
      fail(error);
    }
  });

  $("add-person-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { display_name: $("np-name").value.trim() };
    if ($("np-ref").value.trim()) body.external_ref = $("np-ref").value.trim();
    try {
      const subject = await api("POST", "/subjects", { json: body });
      event.target.reset();
      await refreshPeople();
      say(t("donePersonAdded", subject.display_name));
      openPerson(subject.subject_id);
    } catch (error) {
      fail(error);
    }
  });

  // ---------------------------------------------------------------- audit trail

  // GET /audit/events pages through the tenant's chain (docs/audit.md).
  let auditLoads = 0;

  async function loadAudit({ fresh = false } = {}) {
    // Only the newest request's answer is shown (a filter applied while the
    // previous page was loading must not get that page appended).
    const load = ++auditLoads;
    if (fresh) {
      state.audit = [];
      state.auditCursor = null;
    }
    const form = $("audit-filters");
    const query = new URLSearchParams({ limit: "50" });
    const action = form.elements.action.value.trim();
    if (action) query.set("action", action);
    if (form.elements.since.value) query.set("since", `${form.elements.since.value}T00:00:00Z`);
    if (form.elements.until.value) query.set("until", `${form.elements.until.value}T00:00:00Z`);
    if (state.auditCursor) query.set("cursor", state.auditCursor);
    const page = await api("GET", `/audit/events?${query}`);
    if (load !== auditLoads) return;
    state.audit = state.audit.concat(page.items);
    state.auditCursor = page.next_cursor;
    if (!page.complete) say(page.hint ? t("auditTooLarge", page.hint) : t("auditTooLarge", ""));
    renderAudit();
  }

  // What an event is about: its ids (never names: the chain holds none).
  const AUDIT_IDS = ["subject_id", "consent_id", "asset_id", "request_id", "key_id", "new_key_id", "endpoint_id", "delivery_id", "role", "status"];

  function renderAudit() {
    $("audit-rows").replaceChildren(
      ...(state.audit.length
        ? state.audit.map((e) =>
            h(
              "tr",
              { "data-seq": String(e.seq) },
              h("td", { text: fmtDateTime(e.at) }),
              h("td", { "data-field": "action", text: e.action }),
              h("td", { "data-field": "actor", text: e.actor || t("auditNoActor") }),
              h("td", { text: AUDIT_IDS.filter((k) => e[k] !== undefined).map((k) => `${k}: ${e[k]}`).join(", ") }),
              h("td", { text: e.lane ? `${e.lane}/${e.seq}` : String(e.seq) }),
            ),
          )
        : [h("tr", {}, h("td", { colspan: "5", text: t("auditNone") }))]),
    );
    $("audit-more").hidden = !state.auditCursor;
  }

  $("audit-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadAudit({ fresh: true }).catch(fail);
  });

  $("audit-more").addEventListener("click", () => loadAudit().catch(fail));

  $("audit-verify").addEventListener("click", async () => {
    const out = $("audit-verdict");
    out.textContent = t("auditVerifying");
    try {
      const v = await api("GET", "/audit/verify");
      if (!v.complete) out.textContent = t("auditTooLarge", v.hint || "");
      else if (v.intact) out.textContent = t("auditIntact", v.records, v.events);
      else out.textContent = t("auditBroken", Object.keys(v.problems).join(", "), v.first_break?.seq);
      out.dataset.intact = String(v.intact);
    } catch (error) {
      out.textContent = "";
      fail(error);
    }
  });

  // ---------------------------------------------------------------- overview

  const SERIES = ["scanned", "faces", "approved", "quarantined", "erased"];
  const COLUMNS = ["scanned", "faces", "approved", "quarantined", "rejected", "erased"];

  async function loadOverview() {
    state.overview = await api("GET", "/overview?months=12");
    renderOverview();
    renderRequests((await api("GET", "/person-requests")).items);
    // This month's usage against quota and prices (docs/billing.md); any role may read it.
    state.bill = (await api("GET", "/usage")).bill;
    renderBill();
  }

  // People's own access and erasure requests (docs/person-pages.md).
  function renderRequests(items) {
    $("requests-rows").replaceChildren(
      ...(items.length
        ? items.map((r) =>
            h(
              "tr",
              { "data-request": r.request_id },
              h("td", { text: r.deadline ? fmtDate(r.deadline) : "" }),
              h("td", { text: t(`r_${r.kind}`) }),
              h("td", { text: t(`r_${r.status}`) }),
              h("td", { text: r.email }),
              h("td", { text: r.request_id }),
            ),
          )
        : [h("tr", {}, h("td", { colspan: "5", text: t("requestsNone") }))]),
    );
  }

  const BILL_COLUMNS = ["dimension", "used", "quota", "price", "projected", "amount"];

  function renderBill() {
    const b = state.bill;
    if (!b) return;
    const money = (v) => new Intl.NumberFormat(state.lang, { style: "currency", currency: b.currency, maximumFractionDigits: 4 }).format(v);
    $("bill-help").textContent = t("billHelp", Math.round(b.month_elapsed * 100));
    $("bill-head").replaceChildren(h("tr", {}, ...BILL_COLUMNS.map((c) => h("th", { scope: "col", text: t(`b_${c}`) }))));
    $("bill-rows").replaceChildren(
      ...b.dimensions.map((d) =>
        h(
          "tr",
          { "data-dimension": d.dimension },
          h("th", { scope: "row", text: t(`d_${d.dimension}`) }),
          h("td", { "data-field": "used", text: String(d.used) }),
          h("td", { "data-field": "quota", text: d.quota === null ? "" : String(d.quota) }),
          h("td", { "data-field": "price", text: money(d.unit_price) }),
          h("td", { "data-field": "projected", text: String(d.projected) }),
          h("td", { "data-field": "amount", text: money(d.projected_amount) }),
        ),
      ),
      h(
        "tr",
        { "data-dimension": "total" },
        h("th", { scope: "row", text: t("b_total") }),
        h("td", { colspan: "4" }),
        h("td", { "data-field": "amount", text: money(b.projected_amount) }),
      ),
    );
  }

  function renderOverview() {
    const o = state.overview;
    $("chart").replaceChildren(chart(o.months));
    $("volumes-note").hidden = o.volumes_complete;
    $("volumes-note").textContent = o.volumes_complete ? "" : t("volumesIncomplete");
    $("volumes-head").replaceChildren(
      h("tr", {}, h("th", { scope: "col", text: t("month") }), ...COLUMNS.map((c) => h("th", { scope: "col", text: t(`m_${c}`) }))),
    );
    $("volumes-rows").replaceChildren(
      ...o.months.map((m) =>
        h(
          "tr",
          { "data-month": m.month },
          h("th", { scope: "row", text: fmtMonth(m.month) }),
          ...COLUMNS.map((c) => h("td", { "data-series": c, text: String(m[c]) })),
        ),
      ),
    );
    $("expiring").replaceChildren(
      ...Object.keys(o.expiring)
        .sort((a, b) => Number(a) - Number(b))
        .flatMap((days) => [h("dt", { text: t("within", days) }), h("dd", { "data-days": days, text: String(o.expiring[days]) })]),
    );
    $("dlq").replaceChildren(
      ...Object.entries(o.dead_letters).flatMap(([name, count]) => [
        h("dt", { text: t(`q_${name}`) === `q_${name}` ? name : t(`q_${name}`) }),
        h("dd", { "data-queue": name, text: count === null ? t("unknown") : String(count) }),
      ]),
    );
    const acc = o.accuracy;
    $("accuracy-audit").textContent = !acc
      ? t("accuracyNone")
      : acc.stale
        ? t("accuracyStale", fmtDateTime(acc.created_at), acc.stale_reasons.join("; "))
        : t("accuracyCurrent", fmtDateTime(acc.created_at));
    $("accuracy-audit").classList.toggle("stale", Boolean(acc && acc.stale));
    $("overview-generated").textContent = t("generated", fmtDateTime(o.generated_at));
    renderRetention();
  }

  function renderRetention() {
    const p = state.policy;
    if (!p) return;
    $("rt-quarantine").value = p.quarantine_retention_days;
    $("rt-rejected").value = p.rejected_retention_days;
    $("rt-digest").value = p.digest;
  }

  $("retention-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!event.target.reportValidity()) return;
    const json = {
      quarantine_retention_days: Number($("rt-quarantine").value),
      rejected_retention_days: Number($("rt-rejected").value),
      digest: $("rt-digest").value,
    };
    try {
      state.policy = await api("PATCH", "/policy", { json });
      renderRetention();
      say(t("doneRetention"));
    } catch (error) {
      fail(error);
    }
  });

  function chart(months) {
    const width = 760;
    const height = 300;
    const pad = { left: 44, right: 8, top: 16, bottom: 64 };
    const inner = { w: width - pad.left - pad.right, h: height - pad.top - pad.bottom };
    const max = Math.max(1, ...months.flatMap((m) => SERIES.map((s) => m[s])));
    const step = Math.pow(10, Math.floor(Math.log10(max)));
    const top = Math.ceil(max / step) * step;
    const y = (v) => pad.top + inner.h - (v / top) * inner.h;
    const group = inner.w / months.length;
    const bar = Math.max(2, (group - 6) / SERIES.length);
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-labelledby": "chart-title",
      class: "bars",
    });
    root.append(svg("title", { id: "chart-title" }, t("chartLabel")));
    for (const tick of [0, top / 2, top]) {
      root.append(
        svg("line", { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick), class: "grid" }),
        svg("text", { x: pad.left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, String(Math.round(tick))),
      );
    }
    months.forEach((m, i) => {
      const x0 = pad.left + i * group + 3;
      SERIES.forEach((s, j) => {
        const v = m[s];
        root.append(
          svg("rect", { class: `bar b-${s}`, x: x0 + j * bar, y: y(v), width: bar - 1, height: pad.top + inner.h - y(v) }),
        );
      });
      const middle = x0 + group / 2 - 3;
      root.append(
        svg("text", { x: middle, y: height - pad.bottom + 16, class: "axis", "text-anchor": "middle" }, fmtMonth(m.month, { month: "short" })),
      );
      if (i === 0 || m.month.endsWith("-01")) {
        root.append(svg("text", { x: middle, y: height - pad.bottom + 30, class: "axis", "text-anchor": "middle" }, m.month.slice(0, 4)));
      }
    });
    SERIES.forEach((s, j) => {
      const x = pad.left + j * 140;
      root.append(
        svg("rect", { class: `bar b-${s}`, x, y: height - 22, width: 12, height: 12 }),
        svg("text", { x: x + 16, y: height - 12, class: "axis" }, t(`m_${s}`)),
      );
    });
    return root;
  }

  // ---------------------------------------------------------------- start

  function start() {
    const stored = localStorage.getItem(LANG_STORE);
    state.lang = TEXT[stored] ? stored : (navigator.language || "en").toLowerCase().startsWith("nl") ? "nl" : "en";
    applyText();
    const params = new URLSearchParams(location.search);
    if (POOL && params.has("code")) {
      finishPoolSignIn(params).catch(() => signOut(t("signInFailed")));
      return;
    }
    if (POOL && params.has("error")) history.replaceState(null, "", location.pathname);
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) {
      signIn(key).catch(() => signOut(""));
    } else {
      $("key").focus();
    }
  }

  start();
})();
