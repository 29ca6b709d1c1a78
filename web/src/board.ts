// The board view: the board's state, kept from the subscribe snapshot and the events that
// follow it, drawn as a table per group with a typed cell per column, and edited in place.
//
// - State changes only through events (in `seq` order). A write's reply is not applied: the
//   value a person typed shows as pending in its cell until the event with the reply's `seq`
//   (or a later one) has been applied, so nothing is applied twice and nothing flickers.
// - Writes go over the socket (`LiveBoard.write`); made while offline, they wait and go when
//   the subscription is live again. An open editor survives re-renders with what it holds.
// - `update_item` carries `expected_version`; a `409 version_conflict` shows the newer value
//   and offers to write one's own again.
// - The table is a grid for the keyboard: arrows move between cells (across groups), Enter or
//   F2 edits, Escape cancels, Space toggles a checkbox, Alt+ArrowUp/Down moves the item.
//   Rows can also be dragged.
// - Viewers (and commenters, for cells) get no edit controls; owners get the board settings
//   (board_settings.ts).

import "./board.css";
import { call } from "./api";
import { BoardSettings } from "./board_settings";
import { describe, display, editor, nameEditor, same, type CellEditor } from "./cells";
import { h, show } from "./dom";
import { ItemPanels } from "./item_panel";
import { LiveBoard, WriteError, type Status, type Written } from "./live";
import { Presence } from "./presence";
import type { BoardRole, BoardWithRole, Column, EventFrame, Group, Item, Snapshot, User, Uuid } from "./wire";

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

/** The column key of the item's name, next to the columns' ids. */
const NAME = "name";

/** A value written but not yet seen in an event. */
interface Pending {
  value: unknown;
  /** The `seq` of the event it committed as, once answered. */
  seq: number | null;
}

/** Where the keyboard is: an item (or a group's add row) and a column index (0 = the name). */
interface Cursor {
  row: string;
  col: number;
}

interface Editing {
  item: Uuid;
  column: string;
  editor: CellEditor;
}

/** A `form` that runs `action` on submit, showing its failure in the board's notice. */
function inlineForm(label: string, fields: Node[], submit: string, action: () => void, extra: Node[] = []): HTMLFormElement {
  const element = h("form", { "aria-label": label, class: "inline" }, ...fields, h("button", { type: "submit" }, submit), ...extra);
  element.addEventListener("submit", (event) => {
    event.preventDefault();
    action();
  });
  return element;
}

/** A board on screen, live until [`BoardView.stop`]. */
export class BoardView {
  private board: Snapshot["board"] | null = null;
  private columns = new Map<Uuid, Column>();
  private groups = new Map<Uuid, Group>();
  private items = new Map<Uuid, Item>();
  private seq = 0;
  private role: BoardRole | null = null;
  private me: Uuid | null = null;
  private readonly pending = new Map<string, Pending>();
  /** Versions the server answered for this page's own item writes, ahead of their events. */
  private readonly acked = new Map<Uuid, number>();
  /** This page's `update_item` writes per item still waiting for their reply. */
  private readonly inflight = new Map<Uuid, number>();
  private readonly collapsed = new Set<Uuid>();
  private showArchived = false;
  private editing: Editing | null = null;
  private cursor: Cursor | null = null;
  private renamingGroup: Uuid | null = null;
  private dragging: Uuid | null = null;
  private queuedWrites = 0;
  private status: Status = "connecting";
  private closed = false;
  private readonly live: LiveBoard;
  private readonly banner = h("p", { class: "banner", role: "status" });
  private readonly notice = h("div", { class: "notice", role: "alert" });
  private readonly conflicts = h("div", { class: "conflicts" });
  private readonly settingsPlace = h("div", { class: "settings-place" });
  private readonly body = h("div", { class: "board-body" });
  // web-items hooks: the item panel (comments, files) and who is viewing the board.
  private readonly panels: ItemPanels;
  private readonly presence: Presence;
  private settings: BoardSettings | null = null;
  /** Forms kept from one render to the next, so what is typed in them survives events. */
  private kept = new Map<string, HTMLElement>();
  private used = new Set<string>();

  constructor(
    private readonly boardId: Uuid,
    private readonly root: HTMLElement,
    private readonly people: Map<Uuid, string>,
    private readonly onGone: (why: string) => void,
  ) {
    this.panels = new ItemPanels(boardId, people, () => this.board?.organization_id);
    this.presence = new Presence(people);
    show(root, this.banner, this.presence.element, this.notice, this.conflicts, this.settingsPlace, this.body);
    this.body.addEventListener("keydown", (event) => {
      this.key(event);
    });
    this.live = new LiveBoard(boardId, {
      snapshot: ({ snapshot }) => {
        if (snapshot) this.load(snapshot);
      },
      event: (event) => {
        this.apply(event);
      },
      status: (status, why) => {
        this.setStatus(status, why);
        if (status !== "live") this.presence.stale();
      },
      presence: (frame) => {
        this.presence.update(frame);
      },
      refused: (error) => {
        this.tell(`The server refused a change: ${error.message} (${error.code})`);
      },
      queued: (count) => {
        this.queuedWrites = count;
        this.showBanner();
      },
    });
  }

  stop(): void {
    this.live.stop();
    this.panels.stop();
  }

  // ----- state ------------------------------------------------------------------------------

  private load(snapshot: Snapshot): void {
    const first = this.board === null;
    this.board = snapshot.board;
    this.seq = snapshot.seq;
    this.columns = new Map(snapshot.columns.map((c) => [c.id, c]));
    this.groups = new Map(snapshot.groups.map((g) => [g.id, g]));
    this.items = new Map(snapshot.items.map((i) => [i.id, i]));
    this.settle();
    this.render();
    if (first) void this.learnRole();
  }

  /** Asks who this person is on the board: `GET /me` and the org's boards with roles. */
  private async learnRole(): Promise<void> {
    if (!this.board) return;
    try {
      const [me, boards] = await Promise.all([
        call<{ user: User }>("GET", "/me"),
        call<{ boards: BoardWithRole[] }>("GET", `/orgs/${this.board.organization_id}/boards`),
      ]);
      this.me = me.user.id;
      this.role = boards.boards.find((b) => b.id === this.boardId)?.role ?? null;
    } catch {
      this.role = null;
    }
    this.render();
    this.settings?.render();
  }

  private apply(event: EventFrame): void {
    this.panels.event(event); // web-items hook: comments, files, renames of the open item
    this.seq = event.seq;
    const [entity, change] = event.kind.split(".");
    const deleted = change === "deleted";
    switch (entity) {
      case "board":
        if (deleted) {
          this.gone("This board was deleted.");
          return;
        }
        this.board = event.data as Snapshot["board"];
        break;
      case "column": {
        const before = deleted ? undefined : this.columns.get((event.data as Column).id);
        this.upsert(this.columns, event.data as Column, deleted);
        if (deleted) {
          const id = deletedId(event.data);
          for (const item of this.items.values()) {
            if (id && id in item.values) item.values = Object.fromEntries(Object.entries(item.values).filter(([k]) => k !== id));
          }
        } else if (before && (before.type !== (event.data as Column).type || !same(before.settings, (event.data as Column).settings))) {
          // The server cleared values the new type or labels do not allow (and moved those
          // items' versions) without an event per item: a fresh snapshot says which.
          this.live.resync();
        }
        this.settings?.render();
        break;
      }
      case "group":
        this.upsert(this.groups, event.data as Group, deleted);
        if (deleted) {
          const id = deletedId(event.data);
          for (const item of [...this.items.values()]) if (item.group_id === id) this.items.delete(item.id);
        }
        break;
      case "item":
        this.upsert(this.items, event.data as Item, deleted);
        break;
      case "member": {
        const who = (event.data as { user_id?: Uuid }).user_id;
        if (who !== undefined && who === this.me) void this.learnRole();
        this.settings?.membersChanged();
        return;
      }
      default:
        return;
    }
    this.settle();
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

  /** Forgets pending values whose events have been applied. */
  private settle(): void {
    for (const [key, pending] of this.pending) {
      if (pending.seq !== null && pending.seq <= this.seq) this.pending.delete(key);
    }
  }

  private canEdit(): boolean {
    return this.role === "owner" || this.role === "editor";
  }

  // ----- status and messages ----------------------------------------------------------------

  /** Closes the board for good, once (a deletion also ends the subscription). */
  private gone(why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.live.stop();
    this.onGone(why);
  }

  private setStatus(status: Status, why?: string): void {
    this.status = status;
    this.showBanner(why);
    if (status === "closed") this.gone(why ?? "This board is closed.");
  }

  private showBanner(why?: string): void {
    this.banner.dataset["status"] = this.status;
    const says: Record<Status, string> = {
      connecting: "Connecting…",
      live: "Live",
      offline: "Connection lost. Reconnecting…",
      closed: why ?? "This board is closed.",
    };
    const waiting =
      this.queuedWrites > 0 ? ` ${this.queuedWrites} change${this.queuedWrites === 1 ? "" : "s"} will be sent when the connection is back.` : "";
    this.banner.textContent = says[this.status] + (this.status === "live" ? "" : waiting);
  }

  /** Shows a refusal or failure; it stays until dismissed or replaced. */
  private tell(message: string): void {
    const dismiss = h("button", { type: "button", class: "quiet" }, "Dismiss");
    dismiss.addEventListener("click", () => {
      show(this.notice);
    });
    show(this.notice, h("p", { class: "error" }, message, " ", dismiss));
  }

  private failed(error: unknown): void {
    const message = error instanceof Error ? error.message : "Something went wrong.";
    this.tell(`The change was not saved: ${message}`);
  }

  // ----- writes -----------------------------------------------------------------------------

  private write(type: string, fields: Record<string, unknown>): Promise<Written> {
    return this.live.write(type, fields);
  }

  /** Writes a cell (or the name, `column` = NAME) of `item`, showing it pending meanwhile. */
  private setValue(itemId: Uuid, column: string, value: unknown, version?: number): void {
    const item = this.items.get(itemId);
    if (!item) return;
    const current = column === NAME ? item.name : item.values[column];
    const key = `${itemId}:${column}`;
    if (same(current, value) && !this.pending.has(key) && version === undefined) return;
    if (column === NAME && (typeof value !== "string" || value === "")) return;
    const pending: Pending = { value, seq: null };
    this.pending.set(key, pending);
    const expected = version ?? Math.max(item.version, this.acked.get(itemId) ?? 0) + (this.inflight.get(itemId) ?? 0);
    this.inflight.set(itemId, (this.inflight.get(itemId) ?? 0) + 1);
    const fields: Record<string, unknown> = { item_id: itemId, expected_version: expected };
    if (column === NAME) fields["name"] = value;
    else fields["values"] = { [column]: value };
    this.render();
    this.write("update_item", fields)
      .then(
        (written) => {
          const version = (written.data as Partial<Item> | undefined)?.version;
          if (typeof version === "number") this.acked.set(itemId, Math.max(version, this.acked.get(itemId) ?? 0));
          if (this.pending.get(key) === pending) {
            pending.seq = written.seq ?? this.seq;
            this.settle();
          }
        },
        (error: unknown) => {
          if (this.pending.get(key) === pending) this.pending.delete(key);
          if (error instanceof WriteError && error.code === "version_conflict") {
            void this.conflict(itemId, column, value);
          } else {
            this.failed(error);
          }
        },
      )
      .finally(() => {
        this.inflight.set(itemId, Math.max(0, (this.inflight.get(itemId) ?? 1) - 1));
        this.render();
      });
  }

  /** A 409: someone changed the item first. Shows their value and offers to write ours again. */
  private async conflict(itemId: Uuid, column: string, mine: unknown): Promise<void> {
    let newer: Item | undefined;
    try {
      newer = await call<Item>("GET", `/boards/${this.boardId}/items/${itemId}`);
    } catch (error) {
      this.failed(error);
      return;
    }
    const known = this.items.get(itemId);
    if (!known || known.version < newer.version) {
      // The event is on its way; show the newer item already.
      this.items.set(itemId, newer);
      this.render();
    }
    const theirs = column === NAME ? newer.name : newer.values[column];
    if (same(theirs, mine)) return; // Already what this person wanted (a write sent twice).
    const col = this.columns.get(column);
    const what = column === NAME ? "Name" : (col?.title ?? "The value");
    const entry = h("div", { class: "conflict", role: "alert" });
    const useMine = h("button", { type: "button" }, "Use mine");
    const keepTheirs = h("button", { type: "button", class: "quiet" }, "Keep theirs");
    useMine.addEventListener("click", () => {
      entry.remove();
      this.setValue(itemId, column, mine, newer.version);
    });
    keepTheirs.addEventListener("click", () => {
      entry.remove();
    });
    entry.append(
      h(
        "p",
        {},
        `“${newer.name}” was changed by someone else while your change waited. ${what} now: ${describe(col, theirs, this.people)}. Yours: ${describe(col, mine, this.people)}.`,
      ),
      useMine,
      keepTheirs,
    );
    this.conflicts.append(entry);
  }

  private act(type: string, fields: Record<string, unknown>): void {
    this.write(type, fields).catch((error: unknown) => {
      this.failed(error);
    });
  }

  private moveItem(itemId: Uuid, delta: -1 | 1): void {
    const item = this.items.get(itemId);
    if (!item) return;
    const groups = [...this.groups.values()].sort(byPosition);
    const siblings = this.itemsOf(item.group_id);
    const index = siblings.findIndex((i) => i.id === itemId);
    const neighbour = siblings[index + delta];
    if (neighbour) {
      this.act("move_item", { item_id: itemId, group_id: item.group_id, [delta < 0 ? "before" : "after"]: neighbour.id });
      return;
    }
    // At the edge of its group: into the next group over, at the near end.
    const groupIndex = groups.findIndex((g) => g.id === item.group_id);
    const target = groups[groupIndex + delta];
    if (!target) return;
    const others = this.itemsOf(target.id);
    const fields: Record<string, unknown> = { item_id: itemId, group_id: target.id };
    const edge = delta < 0 ? others[others.length - 1] : others[0];
    if (edge) fields[delta < 0 ? "after" : "before"] = edge.id;
    this.collapsed.delete(target.id);
    this.act("move_item", fields);
  }

  private itemsOf(groupId: Uuid): Item[] {
    return [...this.items.values()].filter((i) => i.group_id === groupId && (this.showArchived || !i.archived)).sort(byPosition);
  }

  // ----- editing ----------------------------------------------------------------------------

  private openEditor(itemId: Uuid, columnKey: string): void {
    if (!this.canEdit()) return;
    const item = this.items.get(itemId);
    if (!item) return;
    const column = this.columns.get(columnKey);
    if (columnKey !== NAME && !column) return;
    if (column?.type === "checkbox") {
      this.setValue(itemId, column.id, !(this.shown(item, column.id) === true));
      return;
    }
    const close = (): void => {
      this.editing = null;
      this.render();
      this.focusCursor();
    };
    const events = {
      commit: (value: unknown) => {
        close();
        this.setValue(itemId, columnKey, value);
      },
      cancel: close,
    };
    const open = column
      ? editor(column, this.shown(item, column.id), this.people, `${column.title} of ${item.name}`, events)
      : nameEditor(this.shown(item, NAME) as string, `Name of ${item.name}`, events);
    this.editing = { item: itemId, column: columnKey, editor: open };
    this.render();
    open.focus();
  }

  /** What a cell shows: the pending value when there is one. */
  private shown(item: Item, column: string): unknown {
    const pending = this.pending.get(`${item.id}:${column}`);
    if (pending) return pending.value;
    return column === NAME ? item.name : item.values[column];
  }

  // ----- keyboard ---------------------------------------------------------------------------

  private cells(): HTMLElement[] {
    return [...this.body.querySelectorAll<HTMLElement>("[data-row][data-col]")];
  }

  private cellAt(cursor: Cursor): HTMLElement | undefined {
    return this.cells().find((c) => c.dataset["row"] === cursor.row && c.dataset["col"] === String(cursor.col));
  }

  private focusCursor(): void {
    if (!this.cursor) return;
    this.cellAt(this.cursor)?.focus();
  }

  private key(event: KeyboardEvent): void {
    const cell = (event.target as HTMLElement).closest<HTMLElement>("[data-row][data-col]");
    if (!cell || event.target !== cell) return;
    const row = cell.dataset["row"] ?? "";
    const col = Number(cell.dataset["col"]);
    const rows = [...new Set(this.cells().map((c) => c.dataset["row"] ?? ""))];
    const width = this.columnsInOrder().length;
    const go = (r: string, c: number): void => {
      event.preventDefault();
      this.cursor = { row: r, col: Math.max(0, Math.min(width, c)) };
      this.markCursor();
      this.focusCursor();
    };
    const at = rows.indexOf(row);
    if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      event.preventDefault();
      if (this.canEdit()) this.moveItem(row, event.key === "ArrowUp" ? -1 : 1);
      return;
    }
    switch (event.key) {
      case "ArrowUp":
        if (at > 0) go(rows[at - 1] ?? row, col);
        return;
      case "ArrowDown":
        if (at < rows.length - 1) go(rows[at + 1] ?? row, col);
        return;
      case "ArrowLeft":
        go(row, col - 1);
        return;
      case "ArrowRight":
        go(row, col + 1);
        return;
      case "Home":
        go(row, 0);
        return;
      case "End":
        go(row, width);
        return;
      case "Enter":
      case "F2":
      case " ": {
        const key = col === 0 ? NAME : this.columnsInOrder()[col - 1]?.id;
        if (!key) return;
        if (event.key === " " && this.columns.get(key)?.type !== "checkbox") return;
        event.preventDefault();
        this.cursor = { row, col };
        this.openEditor(row, key);
        return;
      }
    }
  }

  /** Roving tabindex: the cursor's cell is the grid's one tab stop. */
  private markCursor(): void {
    const cells = this.cells();
    let found = false;
    for (const cell of cells) {
      const here = this.cursor !== null && cell.dataset["row"] === this.cursor.row && cell.dataset["col"] === String(this.cursor.col);
      cell.tabIndex = here ? 0 : -1;
      found ||= here;
    }
    const first = cells[0];
    if (!found && first) first.tabIndex = 0;
  }

  // ----- drawing ----------------------------------------------------------------------------

  private columnsInOrder(): Column[] {
    return [...this.columns.values()].sort(byPosition);
  }

  private openSettings(): void {
    if (!this.board) return;
    if (this.settings) {
      this.settings.close();
      return;
    }
    this.settings = new BoardSettings(this.boardId, this.settingsPlace, this.people, {
      columns: () => this.columnsInOrder(),
      write: (type, fields) => this.write(type, fields),
      failed: (error) => {
        this.failed(error);
      },
      closed: () => {
        this.settings = null;
        this.render();
      },
    });
    this.render();
  }

  /** The element kept under `key`, made by `make` the first time. */
  private keep<T extends HTMLElement>(key: string, make: () => T): T {
    this.used.add(key);
    const found = this.kept.get(key);
    if (found) return found as T;
    const made = make();
    this.kept.set(key, made);
    return made;
  }

  private render(): void {
    if (!this.board) return;
    this.used = new Set();
    const active = document.activeElement;
    const typing =
      (active instanceof HTMLInputElement || active instanceof HTMLTextAreaElement) && this.body.contains(active)
        ? { element: active, start: active.selectionStart, end: active.selectionEnd }
        : null;
    const editorHadFocus = this.editing !== null && active instanceof Node && this.editing.editor.element.contains(active);
    const cellHadFocus = active instanceof HTMLElement && this.body.contains(active) && active.dataset["row"] !== undefined;
    if (this.editing) this.editing.editor.element.dataset["moving"] = "true";

    const edit = this.canEdit();
    const columns = this.columnsInOrder();
    const groups = [...this.groups.values()].sort(byPosition);
    const sections = groups.map((group) => this.renderGroup(group, columns, edit));
    const tools: Node[] = [];
    if (edit) {
      tools.push(
        this.keep("add-group", () => {
          const title = h("input", { name: "group-title", required: true, "aria-label": "New group title", placeholder: "New group" });
          return inlineForm("Add group", [title], "Add group", () => {
            const value = title.value.trim();
            if (!value) return;
            title.value = "";
            this.act("create_group", { title: value });
          });
        }),
      );
    }
    const archived = h("input", { type: "checkbox", checked: this.showArchived });
    archived.addEventListener("change", () => {
      this.showArchived = archived.checked;
      this.render();
    });
    tools.push(h("label", { class: "toggle" }, archived, " Show archived items"));
    if (this.role === "owner") {
      const settings = h("button", { type: "button", "aria-expanded": this.settings ? "true" : "false" }, "Board settings");
      settings.addEventListener("click", () => {
        this.openSettings();
      });
      tools.push(settings);
    }
    show(
      this.body,
      h("h1", {}, this.board.name),
      this.board.description ? h("p", {}, this.board.description) : null,
      h("div", { class: "board-tools" }, ...tools),
      ...sections,
    );
    if (this.editing && !this.editing.editor.element.isConnected) {
      // Its item or column went away.
      this.editing = null;
    }
    for (const key of [...this.kept.keys()]) if (!this.used.has(key)) this.kept.delete(key);
    this.markCursor();
    if (this.editing) {
      delete this.editing.editor.element.dataset["moving"];
      if (editorHadFocus) this.editing.editor.focus();
    } else if (cellHadFocus) {
      this.focusCursor();
    }
    // A kept form's field that had the focus gets it back, with its caret where it was.
    if (typing?.element.isConnected && document.activeElement !== typing.element) {
      typing.element.focus();
      try {
        typing.element.setSelectionRange(typing.start, typing.end);
      } catch {
        // Some input types (number, date) have no selection.
      }
    }
  }

  private renderGroup(group: Group, columns: Column[], edit: boolean): HTMLElement {
    const collapsed = this.collapsed.has(group.id);
    const items = this.itemsOf(group.id);
    const tableId = `group-table-${group.id}`;
    const toggle = h("button", { type: "button", class: "group-toggle", "aria-expanded": collapsed ? "false" : "true", "aria-controls": tableId }, group.title);
    toggle.addEventListener("click", () => {
      if (collapsed) this.collapsed.delete(group.id);
      else this.collapsed.add(group.id);
      this.render();
    });
    const heading = h("h2", { id: `group-${group.id}` }, toggle);
    if (group.color) heading.style.setProperty("--group-color", group.color);
    const count = h("span", { class: "count" }, `${items.length} item${items.length === 1 ? "" : "s"}`);
    const header = h("div", { class: "group-header" }, heading, count);
    if (edit) {
      if (this.renamingGroup === group.id) {
        header.append(
          this.keep(`rename-${group.id}`, () => {
            const title = h("input", { name: "title", value: group.title, required: true, "aria-label": "Group title" });
            const cancel = h("button", { type: "button", class: "quiet" }, "Cancel");
            cancel.addEventListener("click", () => {
              this.renamingGroup = null;
              this.render();
            });
            title.addEventListener("keydown", (event) => {
              if (event.key === "Escape") cancel.click();
            });
            queueMicrotask(() => {
              title.focus();
              title.select();
            });
            return inlineForm(
              `Rename ${group.title}`,
              [title],
              "Save",
              () => {
                this.renamingGroup = null;
                const value = title.value.trim();
                if (value && value !== group.title) this.act("update_group", { group_id: group.id, title: value });
                this.render();
              },
              [cancel],
            );
          }),
        );
      } else {
        const rename = h("button", { type: "button", class: "quiet", "aria-label": `Rename group ${group.title}` }, "Rename");
        rename.addEventListener("click", () => {
          this.renamingGroup = group.id;
          this.render();
        });
        const remove = h("button", { type: "button", class: "quiet danger", "aria-label": `Delete group ${group.title}` }, "Delete");
        remove.addEventListener("click", () => {
          if (confirm(`Delete the group "${group.title}" and its ${items.length} items?`)) this.act("delete_group", { group_id: group.id });
        });
        header.append(rename, remove);
      }
    }
    const section = h("section", { class: "group", "aria-labelledby": `group-${group.id}` }, header);
    if (collapsed) return section;

    const rows = items.map((item) => this.renderRow(item, columns, edit));
    const tbody = h("tbody", {}, ...rows);
    if (edit) this.dropZone(tbody, group.id);
    const table = h(
      "table",
      { id: tableId, role: "grid", "aria-label": group.title },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Item"),
          ...columns.map((c) => h("th", { scope: "col", "data-type": c.type }, c.title)),
          h("th", { scope: "col" }, "Details"), // web-items hook
          edit ? h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")) : null,
        ),
      ),
      tbody,
    );
    section.append(h("div", { class: "table-wrap" }, table));
    if (rows.length === 0) section.append(h("p", { class: "empty-group" }, "No items yet."));
    if (edit) {
      const add = this.keep(`add-item-${group.id}`, () => {
        const name = h("input", { name: "item-name", required: true, placeholder: "New item" });
        return inlineForm("", [name], "Add item", () => {
          const value = name.value.trim();
          if (!value) return;
          name.value = "";
          this.act("create_item", { group_id: group.id, name: value });
        });
      });
      // The group may have been renamed since the form was made.
      add.setAttribute("aria-label", `Add item to ${group.title}`);
      add.querySelector("input")?.setAttribute("aria-label", `New item in ${group.title}`);
      section.append(add);
    }
    return section;
  }

  private renderRow(item: Item, columns: Column[], edit: boolean): HTMLTableRowElement {
    const cellFor = (key: string, index: number, tag: "th" | "td", content: Node, column?: Column): HTMLElement => {
      const pending = this.pending.get(`${item.id}:${key}`);
      const cell = h(tag, {
        "data-row": item.id,
        "data-col": String(index),
        "data-title": column ? column.title : "Item",
        "data-type": column?.type,
        tabindex: "-1",
        scope: tag === "th" ? "row" : undefined,
        role: tag === "th" ? "rowheader" : "gridcell",
        "aria-busy": pending ? "true" : undefined,
        "aria-readonly": edit ? undefined : "true",
        class: pending ? (pending.seq === null ? "pending queued" : "pending") : undefined,
      });
      if (this.editing && this.editing.item === item.id && this.editing.column === key) {
        cell.append(this.editing.editor.element);
        cell.classList.add("editing");
        return cell;
      }
      cell.append(content);
      if (edit) {
        cell.addEventListener("click", (event) => {
          if ((event.target as HTMLElement).closest("a")) return;
          event.preventDefault();
          this.cursor = { row: item.id, col: index };
          this.openEditor(item.id, key);
        });
      }
      cell.addEventListener("focus", () => {
        this.cursor = { row: item.id, col: index };
      });
      return cell;
    };
    const name = String(this.shown(item, NAME));
    const cells: HTMLElement[] = [cellFor(NAME, 0, "th", h("span", { class: "item-name" }, name))];
    columns.forEach((column, i) => {
      const shown = display(column, this.shown(item, column.id), this.people, `${column.title} of ${name}`);
      if (!edit && shown instanceof HTMLInputElement) shown.disabled = true;
      cells.push(cellFor(column.id, i + 1, "td", shown, column));
    });
    const row = h("tr", { "data-item": item.id, class: item.archived ? "archived" : undefined }, ...cells);
    row.append(h("td", { class: "item-actions" }, this.panels.button(item))); // web-items hook
    if (edit) {
      const archive = h("button", { type: "button", class: "quiet", "aria-label": `${item.archived ? "Restore" : "Archive"} ${name}` }, item.archived ? "Restore" : "Archive");
      archive.addEventListener("click", () => {
        this.act("archive_item", { item_id: item.id, archived: !item.archived });
      });
      const remove = h("button", { type: "button", class: "quiet danger", "aria-label": `Delete ${name}` }, "Delete");
      remove.addEventListener("click", () => {
        if (confirm(`Delete "${name}"?`)) this.act("delete_item", { item_id: item.id });
      });
      row.append(h("td", { class: "row-actions" }, archive, remove));
      row.draggable = true;
      row.addEventListener("dragstart", (event) => {
        this.dragging = item.id;
        event.dataTransfer?.setData("text/plain", item.id);
        if (event.dataTransfer) event.dataTransfer.effectAllowed = "move";
        row.classList.add("dragging");
      });
      row.addEventListener("dragend", () => {
        this.dragging = null;
        row.classList.remove("dragging");
      });
    }
    return row;
  }

  /** Dropping a dragged row on a row places it before or after that row (by which half the
   * pointer is over); on the group's empty space, at its end. */
  private dropZone(tbody: HTMLElement, groupId: Uuid): void {
    const target = (event: DragEvent): { row: HTMLTableRowElement | null; after: boolean } => {
      const row = (event.target as HTMLElement).closest<HTMLTableRowElement>("tr[data-item]");
      if (!row) return { row: null, after: true };
      const box = row.getBoundingClientRect();
      return { row, after: event.clientY > box.top + box.height / 2 };
    };
    const clear = (): void => {
      for (const r of tbody.querySelectorAll(".drop-before, .drop-after")) r.classList.remove("drop-before", "drop-after");
    };
    tbody.addEventListener("dragover", (event) => {
      if (!this.dragging) return;
      event.preventDefault();
      clear();
      const { row, after } = target(event);
      row?.classList.add(after ? "drop-after" : "drop-before");
    });
    tbody.addEventListener("dragleave", clear);
    tbody.addEventListener("drop", (event) => {
      const dragged = this.dragging;
      if (!dragged) return;
      event.preventDefault();
      clear();
      const { row, after } = target(event);
      const over = row?.dataset["item"];
      const fields: Record<string, unknown> = { item_id: dragged, group_id: groupId };
      if (over && over !== dragged) fields[after ? "after" : "before"] = over;
      else if (!over) {
        const last = this.itemsOf(groupId).filter((i) => i.id !== dragged).pop();
        if (last) fields["after"] = last.id;
      } else return;
      this.act("move_item", fields);
    });
  }
}
