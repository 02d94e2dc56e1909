// Types of the shoploop browser client (`/v1/client.js`), for shops whose front end is
// TypeScript: save as `shoploop.d.ts` next to your sources (or fetch `/v1/client.d.ts`).
// The script defines `window.Shoploop`; these declarations describe it and the API's answers.

declare namespace Shoploop {
  interface ConnectOptions {
    /** The server's http(s) URL, e.g. "https://search.myshop.example". */
    endpoint: string;
    /** An API key with the `search` and `events` scopes only: anyone can read it. */
    key?: string;
    /** Per-request timeout (default 5000). */
    timeoutMs?: number;
    /** Where the anonymous id, the session and the outbox live (default localStorage). */
    storage?: Pick<Storage, "getItem" | "setItem" | "removeItem">;
    /** Replace the transport (tests, other runtimes); default window.fetch. */
    fetch?: typeof fetch;
    /** The shop's own customer id, when known at page load. */
    userId?: string;
    sessionId?: string;
    /** Send the outbox when the browser comes back online (default true). */
    flushOnOnline?: boolean;
  }

  type Sort = "relevance" | "price_asc" | "price_desc";

  interface ListOptions {
    k?: number;
    page?: number;
    /** One brand, or several (any of them). */
    brand?: string | string[];
    min_price?: number;
    max_price?: number;
    in_stock?: boolean;
    sort?: Sort;
  }

  interface SearchOptions extends ListOptions {
    category?: string;
    /** Also send the `search` event analytics and learning read (default true). */
    track?: boolean;
  }

  interface ServedItem {
    item_id: string;
    /** 1-based slot in the list: what a click reports back. */
    position: number;
    score: number;
    propensity: number;
    reasons: string[];
    explanation: Record<string, unknown>;
    title?: string;
    price?: number | null;
    category?: string | null;
    brand?: string | null;
    in_stock?: boolean;
  }

  /** Every read answers a served list; pass it back with the feedback on its items. */
  interface ServedList {
    request_id: string;
    surface: string;
    items: ServedItem[];
    policy: string;
    explored: boolean;
    model_version: string;
    query?: string | null;
    understood_query?: Record<string, unknown> | null;
    facets?: Record<string, Record<string, number>>;
    redirect?: string | null;
    total_candidates?: number;
    sort?: Sort | null;
    category?: string | null;
  }

  /** A list to attribute an event to: a served list, or {request_id, position} carried in a link. */
  type ListRef = ServedList | { request_id: string; position?: number };

  interface EventAnswer {
    accepted: number;
    duplicate: number;
    rejected: number;
    /** 1 when the server could not take the event and it waits in the outbox. */
    queued?: number;
    results: Array<{ status: "accepted" | "duplicate" | "rejected"; event_id?: string; reason?: string }>;
  }

  interface PurchaseLine {
    item_id: string;
    price: number;
    quantity: number;
  }

  class ShoploopError extends Error {
    /** HTTP status; 0 = no answer (offline, timed out, or an origin the server does not allow). */
    status: number;
    code: string;
    /** The input the server refused, when it named one. */
    field: string | null;
  }

  class Client {
    constructor(options: ConnectOptions);
    readonly endpoint: string;
    readonly userId: string;
    readonly sessionId: string;
    /** Event posts in flight. */
    readonly pending: number;
    /** Events waiting in the outbox. */
    readonly queued: number;
    /** Queued events this page pushed out of a full outbox. */
    readonly dropped: number;

    identify(userId: string): void;

    search(query: string, options?: SearchOptions): Promise<ServedList>;
    browse(category: string, options?: ListOptions): Promise<ServedList>;
    suggest(prefix: string, options?: { k?: number }): Promise<string[]>;
    recommendations(options?: { k?: number; category?: string }): Promise<ServedList>;
    similar(itemId: string, options?: { k?: number }): Promise<ServedList>;
    boughtTogether(itemId: string, options?: { k?: number }): Promise<ServedList>;
    trending(options?: { k?: number; category?: string }): Promise<ServedList>;

    click(list: ListRef, itemId: string): Promise<EventAnswer>;
    view(itemId: string, options?: { list?: ListRef }): Promise<EventAnswer>;
    addToCart(itemId: string, options?: { list?: ListRef; quantity?: number; price?: number }): Promise<EventAnswer>;
    purchase(
      lines: PurchaseLine[],
      options?: { order_id?: string; currency?: string; list?: ListRef }
    ): Promise<EventAnswer>;
    rate(itemId: string, rating: number): Promise<EventAnswer>;
    dislike(itemId: string, options?: { list?: ListRef }): Promise<EventAnswer>;
    /** Any event type of docs/events.md; user, session, time and an event_id are added. */
    track(type: string, fields: Record<string, unknown>, eventId?: string): Promise<EventAnswer>;
    /** Send the outbox now; resolves to the number of events sent. */
    flush(): Promise<number>;
    /** Send clicks on [data-shoploop-item] elements inside `container` as clicks on `list`. */
    bind(container: Element, list: ServedList): () => void;
  }

  function connect(options: ConnectOptions): Client;
  const version: string;
}

interface Window {
  Shoploop: typeof Shoploop;
}
