// Storefront feedback: every view, click, cart and purchase goes to POST /v1/events with the
// request_id (and position) of the served list it came from. No framework, no build step.
(function () {
  "use strict";
  const body = document.body;
  const user = body.dataset.user;
  const session = body.dataset.session;
  const key = body.dataset.key;
  const cartKey = "shoploop_cart_" + user;
  const status = document.getElementById("event-status");
  let pending = 0;
  let sent = 0;

  function rand() {
    return Math.random().toString(16).slice(2) + Date.now().toString(16);
  }
  function now() {
    return new Date().toISOString();
  }
  function base(type, extra) {
    return Object.assign({ type: type, user_id: user, session_id: session, timestamp: now() }, extra);
  }
  function setStatus(text) {
    if (status) status.textContent = text;
  }

  // Sends a batch; resolves to the per-event answers. keepalive lets it finish during navigation.
  function sendEvents(events) {
    if (!key || events.length === 0) return Promise.resolve(null);
    pending += 1;
    body.dataset.eventsPending = String(pending);
    return fetch("/v1/events", {
      method: "POST",
      keepalive: true,
      headers: { "Content-Type": "application/json", "X-API-Key": key },
      body: JSON.stringify({ events: events }),
    })
      .then((r) => r.json())
      .then((answer) => {
        sent += answer.accepted || 0;
        setStatus(" · events: " + sent + " accepted");
        return answer;
      })
      .catch((err) => {
        setStatus(" · events not sent: " + err);
        return null;
      })
      .finally(() => {
        pending -= 1;
        body.dataset.eventsPending = String(pending);
        body.dataset.eventsSent = String(sent);
      });
  }

  function readCart() {
    try {
      return JSON.parse(localStorage.getItem(cartKey) || "[]");
    } catch (e) {
      return [];
    }
  }
  function writeCart(lines) {
    localStorage.setItem(cartKey, JSON.stringify(lines));
    const count = document.getElementById("cart-count");
    if (count) count.textContent = String(lines.reduce((n, l) => n + l.quantity, 0));
  }
  function intOrNull(v) {
    const n = parseInt(v, 10);
    return Number.isFinite(n) && n > 0 ? n : null;
  }

  function addToCart(button) {
    const d = button.dataset;
    const price = parseFloat(d.price);
    const ev = base("add_to_cart", { item_id: d.item, event_id: "cart-" + rand(), quantity: 1 });
    if (d.rid) ev.request_id = d.rid;
    if (Number.isFinite(price) && price > 0) ev.price = price;
    const lines = readCart();
    const line = lines.find((l) => l.item_id === d.item);
    if (line) line.quantity += 1;
    else lines.push({ item_id: d.item, title: d.title, price: price || null, quantity: 1, request_id: d.rid || null });
    writeCart(lines);
    button.textContent = "Added ✓";
    return sendEvents([ev]);
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest("button.add-to-cart");
    if (button) addToCart(button);
  });

  // Product page: the click on the list that led here, then the view.
  const product = document.getElementById("product");
  if (product) {
    const d = product.dataset;
    const events = [];
    if (d.rid) {
      const click = base("click", { item_id: d.item, request_id: d.rid, event_id: "click-" + d.rid + "-" + d.item });
      const pos = intOrNull(d.pos);
      if (pos) click.position = pos;
      events.push(click);
    }
    const view = base("view", { item_id: d.item, event_id: "view-" + (d.rid || session) + "-" + d.item });
    if (d.rid) view.request_id = d.rid;
    events.push(view);
    sendEvents(events);
  }

  // Search box: suggestions as the shopper types, from GET /suggest (the engine's autocomplete),
  // into the input's datalist. Only the newest answer is shown, so a slow early keystroke's
  // reply cannot overwrite a later one.
  const box = document.querySelector('form.searchbar input[name="q"]');
  const options = document.getElementById("search-suggestions");
  if (box && options) {
    let timer = null;
    let asked = 0;
    // A pick from the list arrives as one "insertReplacementText" input (typing inserts text,
    // deleting deletes it): remember what had been typed and the pick's place, so the search
    // event can say the query came from a suggestion.
    let typed = box.value;
    function notePick(e) {
      const place = Array.from(options.options).map((o) => o.value).indexOf(box.value);
      if (e.inputType === "insertReplacementText" && place >= 0) {
        sessionStorage.setItem(
          "shoploop_suggestion",
          JSON.stringify({ query: box.value, typed: typed, position: place + 1 })
        );
      } else {
        typed = box.value;
        sessionStorage.removeItem("shoploop_suggestion");
      }
    }
    function askSoon() {
      clearTimeout(timer);
      timer = setTimeout(function () {
        const ticket = ++asked;
        fetch("/suggest?q=" + encodeURIComponent(box.value))
          .then((r) => (r.ok ? r.json() : { suggestions: [] }))
          .then((answer) => {
            if (ticket !== asked) return;
            options.innerHTML = "";
            for (const text of answer.suggestions) {
              const option = document.createElement("option");
              option.value = text;
              options.appendChild(option);
            }
            options.dataset.q = answer.q;
          })
          .catch(() => {});
      }, 120);
    }
    box.addEventListener("input", function (e) {
      notePick(e);
      askSoon();
    });
  }

  // Search page: the search itself, linked to the list it produced.
  const results = document.getElementById("search-results");
  if (results && results.dataset.requestId) {
    const r = results.dataset;
    const search = base("search", {
      query: r.query,
      request_id: r.requestId,
      n_results: parseInt(r.n, 10) || 0,
      event_id: "search-" + r.requestId,
    });
    const picked = JSON.parse(sessionStorage.getItem("shoploop_suggestion") || "null");
    sessionStorage.removeItem("shoploop_suggestion");
    if (picked && picked.query === r.query) {
      search.context = { suggestion: { typed: picked.typed, position: picked.position } };
    }
    sendEvents([search]);
  }

  // Cart page.
  const cartBody = document.getElementById("cart-lines");
  function renderCart() {
    const lines = readCart();
    cartBody.innerHTML = "";
    let total = 0;
    for (const l of lines) {
      const tr = document.createElement("tr");
      for (const text of [l.title || l.item_id, String(l.quantity), l.price ? "$" + l.price.toFixed(2) : "–"]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      cartBody.appendChild(tr);
      total += (l.price || 0) * l.quantity;
    }
    if (lines.length === 0) cartBody.innerHTML = '<tr><td colspan="3">Your cart is empty.</td></tr>';
    document.getElementById("cart-total").textContent = "$" + total.toFixed(2);
  }
  if (cartBody) {
    renderCart();
    document.getElementById("checkout").addEventListener("click", () => {
      const lines = readCart();
      const out = document.getElementById("checkout-result");
      if (lines.length === 0) {
        out.textContent = "Nothing to buy yet.";
        return;
      }
      // One purchase event per served list the items came from, so each keeps its request_id.
      const order = "order-" + rand();
      const groups = new Map();
      for (const l of lines) {
        const rid = l.request_id || "";
        if (!groups.has(rid)) groups.set(rid, []);
        groups.get(rid).push({ item_id: l.item_id, quantity: l.quantity, price: l.price && l.price > 0 ? l.price : 0.01 });
      }
      const events = [];
      let n = 0;
      for (const [rid, items] of groups) {
        n += 1;
        const ev = base("purchase", { event_id: order + "-" + n, order_id: order, items: items });
        if (rid) ev.request_id = rid;
        events.push(ev);
      }
      sendEvents(events).then((answer) => {
        if (answer && answer.rejected === 0) {
          writeCart([]);
          renderCart();
          out.innerHTML = 'Thank you! Order <strong id="order-id"></strong> placed. <a href="/">Back to the shop</a>';
          document.getElementById("order-id").textContent = order;
        } else {
          out.textContent = "The order could not be recorded: " + JSON.stringify(answer && answer.results);
        }
      });
    });
  }

  writeCart(readCart());
  window.shoploop = { sendEvents: sendEvents, readCart: readCart };
})();
