// shoploop browser client: search, suggestions and recommendations from a shop's own pages,
// and the shopper's clicks, carts and purchases sent back with the request_id and position of
// the list they came from (what the engine learns from without position bias).
//
//   <script src="https://search.myshop.example/v1/client.js"></script>
//   const shop = Shoploop.connect({ endpoint: "https://search.myshop.example", key: "sl_storefront_..." });
//   const results = await shop.search("cordless drill", { k: 20, brand: "Voltix" });
//   shop.bind(document.querySelector("#results"), results);   // clicks on [data-shoploop-item]
//
// Give the page a key with the `search` and `events` scopes only: anyone can read it. The
// page's origin must be allowed on the server (`shoploop serve --allow-origin ...`).
// No dependencies and no build step; works as a classic script (window.Shoploop).
(function (root) {
  "use strict";

  const USER_KEY = "shoploop_uid";
  const SESSION_KEY = "shoploop_session";
  const SESSION_IDLE_MS = 30 * 60 * 1000; // a visit ends after 30 idle minutes, as analytics tools count it
  const SEARCH_PARAMS = ["category", "brand", "min_price", "max_price", "in_stock", "page", "sort"];
  // Events that could not be delivered (offline, timed out, the server busy or down) wait here
  // and go again later; their event_id makes a second delivery a duplicate, never a second event.
  const OUTBOX_KEY = "shoploop_outbox";
  const OUTBOX_MAX = 500; // beyond it the oldest go first: a page offline for days must not fill storage
  const BATCH_MAX = 100; // events per POST when the outbox is sent
  const RETRY_STATUS = [0, 408, 429, 500, 502, 503, 504]; // no answer, or "try again later"

  function randomId(prefix) {
    const c = root.crypto;
    const body = c && c.randomUUID ? c.randomUUID().replace(/-/g, "") : Math.random().toString(16).slice(2) + Date.now().toString(16);
    return prefix + body;
  }

  // Storage can be missing or refuse writes (private windows, blocked cookies): ids then live
  // for the page only instead of failing the shop's page.
  function memoryStorage() {
    const values = new Map();
    return {
      getItem: (k) => (values.has(k) ? values.get(k) : null),
      setItem: (k, v) => values.set(k, String(v)),
      removeItem: (k) => values.delete(k),
    };
  }
  function defaultStorage() {
    try {
      const s = root.localStorage;
      s.setItem("shoploop_probe", "1");
      s.removeItem("shoploop_probe");
      return s;
    } catch (e) {
      return memoryStorage();
    }
  }

  class ShoploopError extends Error {
    // status: HTTP status (0 = no answer: offline, timed out or refused by CORS);
    // code/field: the API's error body ({"error": {"code", "message", "field"}}).
    constructor(status, code, message, field) {
      super(message);
      this.name = "ShoploopError";
      this.status = status;
      this.code = code;
      this.field = field || null;
    }
  }

  class Client {
    constructor(options) {
      const o = options || {};
      if (typeof o.endpoint !== "string" || !/^https?:\/\//.test(o.endpoint)) {
        throw new ShoploopError(0, "invalid_option", "endpoint: expected the server's http(s) URL", "endpoint");
      }
      this.endpoint = o.endpoint.replace(/\/+$/, "");
      this.key = o.key || null;
      this.timeoutMs = o.timeoutMs || 5000;
      this.storage = o.storage || defaultStorage();
      this._fetch = o.fetch || root.fetch.bind(root);
      this._userId = o.userId || this.storage.getItem(USER_KEY);
      if (!this._userId) {
        this._userId = randomId("anon-");
        this.storage.setItem(USER_KEY, this._userId);
      }
      this._sessionId = o.sessionId || null;
      this.pending = 0; // event posts in flight (tests and pages waiting to navigate read it)
      this.dropped = 0; // queued events pushed out of a full outbox by this page
      this._flushing = null;
      // What an earlier page could not send goes now; and again when the browser is back online.
      if (this.queued > 0) this.flush().catch(() => {});
      if (typeof root.addEventListener === "function" && o.flushOnOnline !== false) {
        root.addEventListener("online", () => this.flush().catch(() => {}));
      }
    }

    get userId() {
      return this._userId;
    }

    // The shopper logged in: later requests and events go under the shop's own customer id.
    // (Past anonymous events stay under the anonymous id; the shop can merge them server-side.)
    identify(userId) {
      if (typeof userId !== "string" || !userId.trim()) {
        throw new ShoploopError(0, "invalid_request", "user_id: expected a non-empty string", "user_id");
      }
      this._userId = userId;
      this.storage.setItem(USER_KEY, userId);
    }

    get sessionId() {
      if (this._sessionId) return this._sessionId;
      const now = Date.now();
      let stored = null;
      try {
        stored = JSON.parse(this.storage.getItem(SESSION_KEY) || "null");
      } catch (e) {
        stored = null;
      }
      const id = stored && now - stored.seen < SESSION_IDLE_MS ? stored.id : randomId("s-");
      this.storage.setItem(SESSION_KEY, JSON.stringify({ id: id, seen: now }));
      return id;
    }

    // ---- reads: each answer is a served list with `request_id` and `items[].position` ----

    // options: k, page, category, brand (one, or an array: any of them), min_price, max_price,
    // in_stock, sort ("relevance", "price_asc", "price_desc"), track (default true: also send
    // the `search` event that search analytics and the learning loop read).
    async search(query, options) {
      const o = options || {};
      const params = { q: query, k: o.k };
      for (const name of SEARCH_PARAMS) params[name] = o[name];
      const list = await this._get("/v1/search", params);
      if (o.track !== false) {
        // not awaited: the results are shown at once; a lost search event only thins analytics
        this.track("search", { query: query, request_id: list.request_id, n_results: list.items.length }).catch(() => {});
      }
      return list;
    }

    // A category page ("Clothing > Jackets"): every product of the category, featured for this
    // shopper or by price; options: k, page, brand, min_price, max_price, in_stock, sort.
    browse(category, options) {
      const o = options || {};
      const params = { category: category, k: o.k };
      for (const name of SEARCH_PARAMS) if (name !== "category") params[name] = o[name];
      return this._get("/v1/browse", params);
    }

    async suggest(prefix, options) {
      const o = options || {};
      const answer = await this._get("/v1/suggest", { q: prefix || "", k: o.k || 8 }, false);
      return answer.suggestions.map((s) => s.text);
    }

    recommendations(options) {
      const o = options || {};
      return this._get("/v1/recommendations/home", { k: o.k, category: o.category });
    }

    similar(itemId, options) {
      return this._get("/v1/items/" + encodeURIComponent(itemId) + "/similar", { k: (options || {}).k });
    }

    boughtTogether(itemId, options) {
      return this._get("/v1/items/" + encodeURIComponent(itemId) + "/bought-together", { k: (options || {}).k });
    }

    trending(options) {
      const o = options || {};
      return this._get("/v1/trending", { k: o.k, category: o.category });
    }

    // ---- feedback: pass the list an item was shown in, and its request_id and position go along ----

    click(list, itemId) {
      return this.track("click", Object.assign({ item_id: itemId }, linkTo(list, itemId)));
    }

    // Only a click carries the position; the other events name the list by its request_id.
    view(itemId, options) {
      return this.track("view", Object.assign({ item_id: itemId }, listOf((options || {}).list)));
    }

    addToCart(itemId, options) {
      const o = options || {};
      const fields = Object.assign({ item_id: itemId, quantity: o.quantity || 1 }, listOf(o.list));
      if (o.price) fields.price = o.price;
      return this.track("add_to_cart", fields);
    }

    // lines: [{ item_id, price, quantity }]; options: order_id, currency, list.
    purchase(lines, options) {
      const o = options || {};
      const fields = { items: lines };
      if (o.order_id) fields.order_id = o.order_id;
      if (o.currency) fields.currency = o.currency;
      Object.assign(fields, listOf(o.list));
      // an order id makes a re-sent purchase (reload of the thank-you page) a duplicate, not a second order
      return this.track("purchase", fields, o.order_id ? "order-" + o.order_id : undefined);
    }

    rate(itemId, rating) {
      return this.track("rating", { item_id: itemId, rating: rating });
    }

    dislike(itemId, options) {
      return this.track("dislike", Object.assign({ item_id: itemId }, listOf((options || {}).list)));
    }

    // Any event type of docs/events.md; user, session, time and a fresh event_id are added.
    // Resolves to the server's answer ({accepted, duplicate, rejected, results}); rejects with a
    // ShoploopError whose `field` names the bad input. keepalive lets it finish while the page
    // navigates away (a click on a product link). When the server cannot be reached or asks to
    // come back later, the event is kept in the outbox and sent by a later call, a later page
    // or the browser coming back online; the promise then resolves to {queued: 1}.
    track(type, fields, eventId) {
      const event = Object.assign(
        {
          type: type,
          user_id: this._userId,
          session_id: this.sessionId,
          timestamp: new Date().toISOString(),
          event_id: eventId || randomId("ev-"),
        },
        fields
      );
      this.pending += 1;
      return this._send("POST", "/v1/events", null, { events: [event] }, true)
        .then(
          (answer) => {
            const first = answer.results && answer.results[0];
            if (first && first.status === "rejected") {
              throw new ShoploopError(422, "rejected", first.reason || "event rejected", null);
            }
            if (this.queued > 0) this.flush().catch(() => {}); // the server answers again
            return answer;
          },
          (err) => {
            if (!(err instanceof ShoploopError) || RETRY_STATUS.indexOf(err.status) < 0) throw err;
            this._enqueue([event]);
            return { accepted: 0, duplicate: 0, rejected: 0, queued: 1, results: [] };
          }
        )
        .finally(() => {
          this.pending -= 1;
        });
    }

    // Events waiting in the outbox (of every page of this shop in this browser).
    get queued() {
      return this._outbox().length;
    }

    // Send the outbox now, BATCH_MAX events per request, oldest first. Resolves to the number
    // sent (accepted, duplicates and refused alike: a refused event would be refused again);
    // stops at the first delivery that fails and keeps the rest for later.
    flush() {
      if (this._flushing) return this._flushing;
      this._flushing = (async () => {
        const done = new Set(); // sent in this flush, even if storage refuses to forget them
        this.pending += 1;
        try {
          for (;;) {
            const batch = this._outbox().filter((e) => !done.has(e.event_id)).slice(0, BATCH_MAX);
            if (!batch.length) return done.size;
            await this._send("POST", "/v1/events", null, { events: batch }, true);
            for (const e of batch) done.add(e.event_id);
            this._saveOutbox(this._outbox().filter((e) => !done.has(e.event_id)));
          }
        } finally {
          this.pending -= 1;
          this._flushing = null;
        }
      })();
      return this._flushing;
    }

    // Clicks on elements with data-shoploop-item="<item_id>" inside `container` are sent as
    // clicks on `list` (its request_id, the item's position). Call again with the new list
    // after re-rendering; the returned function removes the listener.
    bind(container, list) {
      const handler = (e) => {
        const el = e.target.closest("[data-shoploop-item]");
        if (!el || !container.contains(el)) return;
        this.click(list, el.getAttribute("data-shoploop-item")).catch(() => {});
      };
      if (container._shoploopUnbind) container._shoploopUnbind();
      container.addEventListener("click", handler);
      container._shoploopUnbind = () => container.removeEventListener("click", handler);
      return container._shoploopUnbind;
    }

    // ---- transport ----

    _outbox() {
      try {
        const stored = JSON.parse(this.storage.getItem(OUTBOX_KEY) || "[]");
        return Array.isArray(stored) ? stored : [];
      } catch (e) {
        return [];
      }
    }

    _saveOutbox(events) {
      try {
        if (events.length) this.storage.setItem(OUTBOX_KEY, JSON.stringify(events));
        else this.storage.removeItem(OUTBOX_KEY);
      } catch (e) {
        // storage full or refused: what is not stored cannot be sent later
      }
    }

    _enqueue(events) {
      const all = this._outbox().concat(events);
      const over = Math.max(0, all.length - OUTBOX_MAX);
      this.dropped += over;
      this._saveOutbox(all.slice(over));
    }

    _get(path, params, personal) {
      const query = new URLSearchParams();
      if (personal !== false) {
        query.set("user_id", this._userId);
        query.set("session_id", this.sessionId);
      }
      for (const [name, value] of Object.entries(params)) {
        for (const one of Array.isArray(value) ? value : [value]) {
          if (one !== undefined && one !== null && one !== "") query.append(name, String(one));
        }
      }
      return this._send("GET", path, query, null, false);
    }

    async _send(method, path, query, body, keepalive) {
      const headers = {};
      if (this.key) headers["X-API-Key"] = this.key;
      if (body) headers["Content-Type"] = "application/json";
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), this.timeoutMs);
      let response;
      try {
        response = await this._fetch(this.endpoint + path + (query ? "?" + query.toString() : ""), {
          method: method,
          headers: headers,
          body: body ? JSON.stringify(body) : undefined,
          keepalive: keepalive,
          signal: abort.signal,
          mode: "cors",
          credentials: "omit",
        });
      } catch (err) {
        const why = err && err.name === "AbortError" ? "timed out after " + this.timeoutMs + " ms" : String(err);
        throw new ShoploopError(0, "network", method + " " + path + ": " + why, null);
      } finally {
        clearTimeout(timer);
      }
      const text = await response.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch (e) {
        data = null;
      }
      if (!response.ok) {
        const error = (data && data.error) || {};
        throw new ShoploopError(response.status, error.code || "http_" + response.status, error.message || text.slice(0, 200), error.field);
      }
      return data;
    }
  }

  // {request_id} of a served list (or of a carried-over {request_id, position}), else {}.
  function listOf(list) {
    return list && list.request_id ? { request_id: list.request_id } : {};
  }

  // The request_id and 1-based position of `itemId` in a served list (empty when not in it).
  // `list` may also be a bare {request_id, position} carried over from the page that showed it
  // (e.g. in the product link's query string), for the product page's view.
  function linkTo(list, itemId) {
    if (!list || !list.request_id) return {};
    if (!list.items) return list.position ? { request_id: list.request_id, position: Number(list.position) } : { request_id: list.request_id };
    const slot = (list.items || []).find((it) => it.item_id === itemId);
    return slot ? { request_id: list.request_id, position: slot.position } : { request_id: list.request_id };
  }

  root.Shoploop = {
    connect: (options) => new Client(options),
    Client: Client,
    ShoploopError: ShoploopError,
    version: "1",
  };
})(typeof window !== "undefined" ? window : globalThis);
