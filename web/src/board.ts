// The board view: the board's state, kept from the subscribe snapshot and the events that
// follow it, drawn as a table per group with a typed cell per column. Read-only in this slice.

import { h, show } from "./dom";
import { ItemPanels } from "./item_panel";
import { LiveBoard, type Status } from "./live";
import { Presence } from "./presence";
import type { Column, EventFrame, Group, Item, Snapshot, Uuid } from "./wire";

function byPosition<T extends { position: string; id: Uuid }>(a: T, b: T): number {
  if (a.position !== b.position) return a.position < b.position ? -1 : 1;
  return a.id < b.id ? -1 : 1;
}

/** The id of a deleted entity: events carry `{"id": …}`. */
function deletedId(data: unknown): Uuid | undefined {
  if (typeof data === "string") return data;
  if (typeof data === "object" && data !== null && "id" in data) {
    const id = (data as { id: unknown }).id;
    return typeof id === "string" ? id : undefined;
  }
  return undefined;
}

/** A stable colour for a status label, set through the CSSOM (the CSP allows no inline style). */
function labelHue(label: string): number {
  let hash = 0;
  for (const char of label) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) % 360;
  return hash;
}

function text(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

function cell(column: Column, value: unknown, people: Map<Uuid, string>): Node {
  if (value === null || value === undefined) return h("span", { class: "empty" });
  switch (column.type) {
    case "number":
      return h("span", { class: "number" }, typeof value === "number" ? value.toLocaleString() : text(value));
    case "status": {
      const label = h("span", { class: "status" }, text(value));
      label.style.setProperty("--hue", String(labelHue(text(value))));
      return label;
    }
    case "date": {
      const date = text(value);
      return h("time", { datetime: date }, date);
    }
    case "checkbox":
      return h("input", { type: "checkbox", disabled: true, checked: value === true, "aria-label": column.title });
    case "dropdown":
    case "person": {
      const values = Array.isArray(value) ? (value as unknown[]) : [value];
      const names = values.map((v) => (column.type === "person" ? (people.get(text(v)) ?? text(v)) : text(v)));
      return h("span", { class: "chips" }, ...names.map((n) => h("span", { class: "chip" }, n)));
    }
    case "link": {
      const link = typeof value === "object" ? (value as { url?: unknown; text?: unknown }) : { url: value };
      const url = text(link.url);
      if (!/^https?:\/\//i.test(url)) return h("span", {}, url);
      return h("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, text(link.text) || url);
    }
    case "long_text":
      return h("span", { class: "long" }, text(value));
    case "text":
      return h("span", {}, text(value));
  }
}

/** A board on screen, live until [`BoardView.stop`]. */
export class BoardView {
  private board: Snapshot["board"] | null = null;
  private columns = new Map<Uuid, Column>();
  private groups = new Map<Uuid, Group>();
  private items = new Map<Uuid, Item>();
  private readonly live: LiveBoard;
  private readonly banner = h("p", { class: "banner", role: "status" });
  private readonly body = h("div", { class: "board-body" });
  // web-items hooks: the item panel (comments, files) and who is viewing the board.
  private readonly panels: ItemPanels;
  private readonly presence: Presence;

  constructor(
    boardId: Uuid,
    private readonly root: HTMLElement,
    private readonly people: Map<Uuid, string>,
    private readonly onGone: (why: string) => void,
  ) {
    this.panels = new ItemPanels(boardId, people, () => this.board?.organization_id);
    this.presence = new Presence(people);
    show(root, this.banner, this.presence.element, this.body);
    this.live = new LiveBoard(boardId, {
      snapshot: ({ snapshot }) => {
        if (snapshot) this.load(snapshot);
      },
      event: (event) => {
        this.apply(event);
      },
      status: (status, why) => {
        this.status(status, why);
        if (status !== "live") this.presence.stale();
      },
      presence: (frame) => {
        this.presence.update(frame);
      },
    });
  }

  stop(): void {
    this.live.stop();
    this.panels.stop();
  }

  private load(snapshot: Snapshot): void {
    this.board = snapshot.board;
    this.columns = new Map(snapshot.columns.map((c) => [c.id, c]));
    this.groups = new Map(snapshot.groups.map((g) => [g.id, g]));
    this.items = new Map(snapshot.items.map((i) => [i.id, i]));
    this.render();
  }

  private apply(event: EventFrame): void {
    this.panels.event(event); // web-items hook: comments, files, renames of the open item
    const [entity, change] = event.kind.split(".");
    const deleted = change === "deleted";
    switch (entity) {
      case "board":
        if (deleted) {
          this.onGone("This board was deleted.");
          return;
        }
        this.board = event.data as Snapshot["board"];
        break;
      case "column":
        this.upsert(this.columns, event.data as Column, deleted);
        break;
      case "group":
        this.upsert(this.groups, event.data as Group, deleted);
        break;
      case "item":
        this.upsert(this.items, event.data as Item, deleted);
        break;
      default:
        return;
    }
    this.render();
  }

  private upsert<T extends { id: Uuid }>(map: Map<Uuid, T>, data: T, deleted: boolean): void {
    if (deleted) {
      const id = deletedId(data);
      if (id) map.delete(id);
    } else {
      map.set(data.id, data);
    }
  }

  private status(status: Status, why?: string): void {
    this.banner.dataset["status"] = status;
    const says: Record<Status, string> = {
      connecting: "Connecting…",
      live: "Live",
      offline: "Connection lost. Reconnecting…",
      closed: why ?? "This board is closed.",
    };
    this.banner.textContent = says[status];
    if (status === "closed") this.onGone(says.closed);
  }

  private render(): void {
    if (!this.board) return;
    const columns = [...this.columns.values()].sort(byPosition);
    const groups = [...this.groups.values()].sort(byPosition);
    const items = [...this.items.values()].filter((i) => !i.archived).sort(byPosition);
    const sections = groups.map((group) => {
      const rows = items
        .filter((item) => item.group_id === group.id)
        .map((item) =>
          h(
            "tr",
            { "data-item": item.id },
            h("th", { scope: "row" }, item.name),
            ...columns.map((column) =>
              h("td", { "data-type": column.type }, cell(column, item.values[column.id], this.people)),
            ),
            h("td", { class: "item-actions" }, this.panels.button(item)), // web-items hook
          ),
        );
      const heading = h("h2", { id: `group-${group.id}` }, group.title);
      if (group.color) heading.style.setProperty("--group-color", group.color);
      return h(
        "section",
        { class: "group", "aria-labelledby": `group-${group.id}` },
        heading,
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Item"), ...columns.map((c) => h("th", { scope: "col" }, c.title)), h("th", { scope: "col" }, "Details"))),
          h("tbody", {}, ...rows),
        ),
        rows.length === 0 ? h("p", { class: "empty-group" }, "No items yet.") : null,
      );
    });
    show(this.body, h("h1", {}, this.board.name), this.board.description ? h("p", {}, this.board.description) : null, ...sections);
  }
}
