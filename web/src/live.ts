// The board's live connection (docs/PROTOCOL.md): a single-use ticket from
// `POST /ws/ticket` (a cookie alone never opens a socket), `/api/v1/ws?ticket=…` in JSON, then
// `subscribe`. Events are handed over in `seq` order. When the socket drops, it reconnects and
// subscribes with `after_seq`, so the server replays what was missed or sends a fresh snapshot.

import { call } from "./api";
import type { ClientFrame, ClientMessage, EventFrame, ServerFrame, Subscribed, Uuid, WsTicket } from "./wire";

export type Status = "connecting" | "live" | "offline" | "closed";

export interface LiveHandlers {
  snapshot(subscribed: Subscribed): void;
  event(event: EventFrame): void;
  status(status: Status, why?: string): void;
}

/** Longest wait between reconnection attempts. */
const MAX_BACKOFF_MS = 10_000;

export class LiveBoard {
  private socket: WebSocket | null = null;
  private seq: number | null = null;
  private nextId = 1;
  private subscribeId = 0;
  private backoff = 500;
  private stopped = false;
  private timer: number | undefined;

  constructor(
    private readonly boardId: Uuid,
    private readonly handlers: LiveHandlers,
  ) {
    void this.connect();
  }

  /** Closes the connection for good. */
  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.socket?.close(1000);
    this.socket = null;
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
      // 4001 (credentials ended) is retried too: the ticket call refreshes the session, and
      // sends the person to sign in if that fails.
      this.retry();
    };
  }

  private retry(): void {
    if (this.stopped) return;
    this.handlers.status("offline");
    this.timer = window.setTimeout(() => void this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }

  private send(message: ClientMessage): number {
    const id = this.nextId++;
    const frame: ClientFrame = { ...message, id };
    this.socket?.send(JSON.stringify(frame));
    return id;
  }

  private receive(frame: ServerFrame): void {
    switch (frame.type) {
      case "hello": {
        // `after_seq: null` (the first time) asks for a snapshot.
        this.subscribeId = this.send({ type: "subscribe", board_id: this.boardId, after_seq: this.seq });
        return;
      }
      case "reply": {
        if (frame.id !== this.subscribeId) return;
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
        this.handlers.status("live");
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
        this.handlers.status("closed", frame.error.message);
        this.stop();
        return;
      }
      case "presence":
        return;
    }
  }
}
