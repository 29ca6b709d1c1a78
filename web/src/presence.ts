// Who is looking at the board: the socket's `presence` frames (docs/PROTOCOL.md), each carrying
// the whole sorted list of viewers, shown as names from the organization's members. Nothing is
// sent for it: a live subscription is presence, and the browser answers the server's WebSocket
// pings by itself. The list is the latest frame's; while the socket is down it is marked stale.

import "./presence.css";
import { h } from "./dom";
import type { PresenceFrame, Uuid } from "./wire";

/** The board header's "who is here" line. */
export class Presence {
  /** Placed by the board view; kept across its re-renders. */
  readonly element = h("section", { class: "presence", "aria-label": "People viewing this board" });
  private readonly list = h("ul", { class: "presence-list" });
  private readonly change = h("p", { class: "visually-hidden", role: "status" });

  constructor(private readonly people: Map<Uuid, string>) {
    this.element.append(h("span", { class: "presence-title" }, "Viewing now:"), this.list, this.change);
  }

  private name(user: Uuid): string {
    return this.people.get(user) ?? "Someone";
  }

  /** A `presence` frame: the list is the truth; `joined`/`left` are announced politely. */
  update(frame: PresenceFrame): void {
    this.element.dataset["stale"] = "false";
    const names = frame.users.map((user) => ({ user, name: this.name(user) }));
    names.sort((a, b) => a.name.localeCompare(b.name));
    this.list.replaceChildren(
      ...names.map(({ user, name }) => {
        const initials = name
          .split(/\s+/)
          .filter(Boolean)
          .slice(0, 2)
          .map((part) => part.charAt(0).toUpperCase())
          .join("");
        const badge = h("span", { class: "presence-badge", "aria-hidden": "true" }, initials || "?");
        badge.style.setProperty("--hue", String(hue(user)));
        return h("li", { "data-user": user }, badge, h("span", { class: "presence-name" }, name));
      }),
    );
    if (frame.joined) this.change.textContent = `${this.name(frame.joined)} is viewing the board.`;
    else if (frame.left) this.change.textContent = `${this.name(frame.left)} left the board.`;
  }

  /** The socket is down: the list may be out of date until the next frame. */
  stale(): void {
    this.element.dataset["stale"] = "true";
  }
}

/** A stable colour per person, set through the CSSOM (the CSP allows no inline style). */
function hue(user: Uuid): number {
  let hash = 0;
  for (const char of user) hash = (hash * 33 + (char.codePointAt(0) ?? 0)) % 360;
  return hash;
}
