// The board's live connection (docs/PROTOCOL.md): a single-use ticket from
// `POST /ws/ticket` (a cookie alone never opens a socket), `/api/v1/ws?ticket=…` in JSON, then
// `subscribe`. Events are handed over in `seq` order. When the socket drops, it reconnects and
// subscribes with `after_seq`, so the server replays what was missed or sends a fresh snapshot.
//
// Board writes (`write`) go over the same socket, so they are ordered with the events. A write
// made while the socket is down waits in a queue and is sent once the subscription is live
// again; an `update_item` that was in flight when the socket dropped is sent again (its
// `expected_version` makes a second commit impossible), any other is reported as unknown.

import { call } from "./api";
import type { ClientMessage, EventFrame, PresenceFrame, ReplyFrame, ServerFrame, Subscribed, Uuid, WsTicket } from "./wire";

export type Status = "connecting" | "live" | "offline" | "closed";

/** A refused write (or one whose fate the lost connection hides), with the server's code. */
export class WriteError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** An answered write: the entity as REST answers it and the `seq` of its event. */
export interface Written {
  data: unknown;
  seq: number | null;
}

export interface LiveHandlers {
  snapshot(subscribed: Subscribed): void;
  event(event: EventFrame): void;
  status(status: Status, why?: string): void;
  /** A refused reply to a frame this page did not send through `write` (sent by hand). */
  refused?(error: { code: string; message: string }): void;
  /** How many writes wait for the connection. */
  queued?(count: number): void;
  /** web-items hook: who is viewing the board (presence.ts). */
  presence?(frame: PresenceFrame): void;
}

interface PendingWrite {
  frame: Record<string, unknown>;
  resolve(written: Written): void;
  reject(error: WriteError): void;
  /** The id it was last sent with, if it is on the wire. */
  sentAs: number | null;
}

/** Longest wait between reconnection attempts. */
const MAX_BACKOFF_MS = 10_000;

/** What tests reach through `window.__boardroomLive` (only on a page marked `data-test`). */
interface TestHook {
  send(frame: Record<string, unknown>): number;
}

declare global {
  interface Window {
    __boardroomLive?: TestHook;
  }
}

export class LiveBoard {
  private socket: WebSocket | null = null;
  private seq: number | null = null;
  private nextId = 1;
  private subscribeId = 0;
  private backoff = 500;
  private stopped = false;
  private live = false;
  private timer: number | undefined;
  /** Writes in the order they were made: sent ones wait for their reply, others for the socket. */
  private writes: PendingWrite[] = [];

  constructor(
    private readonly boardId: Uuid,
    private readonly handlers: LiveHandlers,
  ) {
    window.addEventListener("pagehide", this.pageHidden);
    // A test marks the page (`<html data-test>`) to send frames by hand, as a person could from
    // the console; an ordinary page exposes nothing.
    if ("test" in document.documentElement.dataset) {
      window.__boardroomLive = { send: (frame) => this.send(frame) };
    }
    void this.connect();
  }

  /** web-items hook: a page kept in the back/forward cache keeps its socket open, so its person
   * would stay in the board's presence; closing it there reconnects (with `after_seq`) once the
   * page is shown again. */
  private readonly pageHidden = (event: PageTransitionEvent): void => {
    if (event.persisted) this.socket?.close(1000);
  };

  /** Closes the connection for good; writes still waiting are refused. */
  stop(): void {
    window.removeEventListener("pagehide", this.pageHidden);
    this.stopped = true;
    this.live = false;
    window.clearTimeout(this.timer);
    this.socket?.close(1000);
    this.socket = null;
    const waiting = this.writes;
    this.writes = [];
    for (const write of waiting) write.reject(new WriteError("closed", "The board was closed before this change was saved."));
  }

  /** Sends a board write (`type` and its fields, `board_id` added); resolves on its reply. */
  write(type: string, fields: Record<string, unknown>): Promise<Written> {
    return new Promise((resolve, reject) => {
      const write: PendingWrite = { frame: { type, board_id: this.boardId, ...fields }, resolve, reject, sentAs: null };
      this.writes.push(write);
      if (this.live) this.transmit(write);
      this.reportQueue();
    });
  }

  /** Asks for a fresh snapshot (after a change the events do not spell out item by item). */
  resync(): void {
    if (this.live) this.subscribeId = this.send({ type: "subscribe", board_id: this.boardId, after_seq: null });
  }

  private isStopped(): boolean {
    return this.stopped;
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.handlers.status("connecting");
    let ticket: string;
    try {
      ticket = (await call<WsTicket>("POST", "/ws/ticket")).ticket;
    } catch {
      this.retry();
      return;
    }
    // `stop` may have run while the ticket was on its way.
    if (this.isStopped()) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/api/v1/ws?ticket=${encodeURIComponent(ticket)}`;
    const socket = new WebSocket(url, "boardroom.v1.json");
    this.socket = socket;
    socket.onmessage = (message) => {
      if (typeof message.data === "string") this.receive(JSON.parse(message.data) as ServerFrame);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.live = false;
      this.orphanInFlight();
      // 4001 (credentials ended) is retried too: the ticket call refreshes the session, and
      // sends the person to sign in if that fails.
      this.retry();
    };
  }

  /** Writes on the wire when the socket dropped: an `update_item` goes again, others fail. */
  private orphanInFlight(): void {
    const kept: PendingWrite[] = [];
    for (const write of this.writes) {
      if (write.sentAs === null || write.frame["type"] === "update_item") {
        write.sentAs = null;
        kept.push(write);
      } else {
        write.reject(new WriteError("connection_lost", "The connection dropped before the server answered; check whether the change is there."));
      }
    }
    this.writes = kept;
    this.reportQueue();
  }

  private retry(): void {
    if (this.stopped) return;
    this.handlers.status("offline");
    this.timer = window.setTimeout(() => void this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }

  /** Sends a frame: a typed message, or a board write built from its type and fields. */
  private send(message: ClientMessage | Record<string, unknown>): number {
    const id = this.nextId++;
    this.socket?.send(JSON.stringify({ ...message, id }));
    return id;
  }

  private transmit(write: PendingWrite): void {
    write.sentAs = this.send(write.frame);
  }

  private reportQueue(): void {
    this.handlers.queued?.(this.writes.filter((w) => w.sentAs === null).length);
  }

  private receive(frame: ServerFrame): void {
    switch (frame.type) {
      case "hello": {
        // `after_seq: null` (the first time) asks for a snapshot.
        this.subscribeId = this.send({ type: "subscribe", board_id: this.boardId, after_seq: this.seq });
        return;
      }
      case "reply": {
        if (frame.id === this.subscribeId) {
          this.subscribed(frame);
          return;
        }
        const index = this.writes.findIndex((w) => w.sentAs !== null && w.sentAs === frame.id);
        const write = index >= 0 ? this.writes.splice(index, 1)[0] : undefined;
        if (write) {
          if (frame.ok) write.resolve({ data: frame.data, seq: frame.seq ?? null });
          else write.reject(new WriteError(frame.error?.code ?? "internal", frame.error?.message ?? "The change was refused."));
        } else if (!frame.ok) {
          this.handlers.refused?.(frame.error ?? { code: "internal", message: "A change was refused." });
        }
        return;
      }
      case "event": {
        if (frame.board_id !== this.boardId) return;
        if (this.seq !== null && frame.seq <= this.seq) return;
        this.seq = frame.seq;
        this.handlers.event(frame);
        return;
      }
      case "unsubscribed": {
        const why = frame.error.code === "not_found" ? "" : ` (${frame.error.message})`;
        this.handlers.status("closed", `You no longer have access to this board${why}.`);
        this.stop();
        return;
      }
      case "presence":
        // web-items hook: presence frames go to presence.ts.
        if (frame.board_id === this.boardId) this.handlers.presence?.(frame);
        return;
    }
  }

  private subscribed(frame: ReplyFrame): void {
    if (!frame.ok) {
      this.handlers.status("closed", frame.error?.message ?? "the board cannot be opened");
      this.stop();
      return;
    }
    const subscribed = frame.data as Subscribed;
    if (subscribed.snapshot) {
      this.seq = subscribed.seq;
      this.handlers.snapshot(subscribed);
    }
    this.backoff = 500;
    const wasLive = this.live;
    this.live = true;
    this.handlers.status("live");
    // Writes made while away go now, in order, behind the replay the server is sending.
    if (!wasLive) {
      for (const write of this.writes) if (write.sentAs === null) this.transmit(write);
      this.reportQueue();
    }
  }
}
