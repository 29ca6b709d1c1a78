// The board's settings, for its owners: the columns (add, rename, retype, relabel, reorder,
// delete) and the members with their roles (add an org member, change a role, remove). Every
// change is a board write over the board's socket; what the panel shows comes from the board's
// events (columns) and from `GET /boards/{board}/members`, read again on each `member.*` event.

import { call } from "./api";
import { labels } from "./cells";
import { field, h, show } from "./dom";
import type { Written } from "./live";
import type { BoardMember, BoardRole, Column, ColumnType, Uuid } from "./wire";

const TYPES: [ColumnType, string][] = [
  ["text", "Text"],
  ["long_text", "Long text"],
  ["number", "Number"],
  ["status", "Status"],
  ["date", "Date"],
  ["person", "Person"],
  ["checkbox", "Checkbox"],
  ["dropdown", "Dropdown"],
  ["link", "Link"],
];

const ROLES: BoardRole[] = ["owner", "editor", "viewer"];

function takesLabels(type: string): boolean {
  return type === "status" || type === "dropdown";
}

function typeSelect(label: string, current: ColumnType): HTMLSelectElement {
  const select = h("select", { "aria-label": label });
  for (const [value, name] of TYPES) select.append(h("option", { value, selected: value === current }, name));
  return select;
}

function roleSelect(label: string, current: BoardRole | null): HTMLSelectElement {
  const select = h("select", { "aria-label": label });
  for (const role of ROLES) select.append(h("option", { value: role, selected: role === current }, role));
  return select;
}

/** "Todo, Done" → ["Todo", "Done"]. */
function parseLabels(raw: string): string[] {
  return raw
    .split(",")
    .map((l) => l.trim())
    .filter((l) => l !== "");
}

export interface SettingsHost {
  columns(): Column[];
  write(type: string, fields: Record<string, unknown>): Promise<Written>;
  failed(error: unknown): void;
  closed(): void;
}

export class BoardSettings {
  private members: BoardMember[] = [];
  private readonly columnsPart = h("section", { class: "settings-columns", "aria-labelledby": "settings-columns" });
  private readonly membersPart = h("section", { class: "settings-members", "aria-labelledby": "settings-members" });

  constructor(
    private readonly boardId: Uuid,
    private readonly place: HTMLElement,
    private readonly people: Map<Uuid, string>,
    private readonly host: SettingsHost,
  ) {
    const close = h("button", { type: "button", class: "quiet" }, "Close settings");
    close.addEventListener("click", () => {
      this.close();
    });
    show(
      place,
      h("div", { class: "settings", role: "region", "aria-label": "Board settings" }, h("div", { class: "settings-head" }, h("h2", {}, "Board settings"), close), this.columnsPart, this.membersPart),
    );
    this.render();
    this.membersChanged();
  }

  close(): void {
    show(this.place);
    this.host.closed();
  }

  private act(type: string, fields: Record<string, unknown>): void {
    this.host.write(type, fields).catch((error: unknown) => {
      this.host.failed(error);
    });
  }

  /** Reads the members again (after a `member.*` event). */
  membersChanged(): void {
    call<{ members: BoardMember[] }>("GET", `/boards/${this.boardId}/members`)
      .then((answer) => {
        this.members = answer.members;
        this.renderMembers();
      })
      .catch((error: unknown) => {
        this.host.failed(error);
      });
  }

  render(): void {
    this.renderColumns();
    this.renderMembers();
  }

  private renderColumns(): void {
    const columns = this.host.columns();
    const rows = columns.map((column, index) => {
      const title = h("input", { value: column.title, required: true, "aria-label": `Title of column ${column.title}` });
      const type = typeSelect(`Type of column ${column.title}`, column.type);
      const labelText = h("input", {
        value: labels(column).join(", "),
        "aria-label": `Labels of column ${column.title}`,
        placeholder: "Todo, Working, Done",
      });
      const syncLabels = (): void => {
        labelText.disabled = !takesLabels(type.value);
      };
      type.addEventListener("change", syncLabels);
      syncLabels();
      const save = h("button", { type: "submit" }, "Save");
      const form = h("form", { class: "column-row", "aria-label": `Column ${column.title}` }, title, type, labelText, save);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const fields: Record<string, unknown> = { column_id: column.id };
        if (title.value.trim() !== column.title) fields["title"] = title.value.trim();
        if (type.value !== column.type) {
          const note = "Values the new type cannot hold will be cleared.";
          if (!confirm(`Change “${column.title}” to ${type.selectedOptions[0]?.textContent ?? type.value}? ${note}`)) return;
          fields["column_type"] = type.value;
        }
        if (takesLabels(type.value)) {
          const chosen = parseLabels(labelText.value);
          if (chosen.join("\n") !== labels(column).join("\n") || type.value !== column.type) fields["settings"] = { labels: chosen };
        }
        if (Object.keys(fields).length > 1) this.act("update_column", fields);
      });
      const left = h("button", { type: "button", class: "quiet", "aria-label": `Move column ${column.title} left`, disabled: index === 0 }, "←");
      left.addEventListener("click", () => {
        const before = columns[index - 1];
        if (before) this.act("update_column", { column_id: column.id, before: before.id });
      });
      const right = h("button", { type: "button", class: "quiet", "aria-label": `Move column ${column.title} right`, disabled: index === columns.length - 1 }, "→");
      right.addEventListener("click", () => {
        const after = columns[index + 1];
        if (after) this.act("update_column", { column_id: column.id, after: after.id });
      });
      const remove = h("button", { type: "button", class: "quiet danger", "aria-label": `Delete column ${column.title}` }, "Delete");
      remove.addEventListener("click", () => {
        if (confirm(`Delete the column “${column.title}” and its values?`)) this.act("delete_column", { column_id: column.id });
      });
      return h("li", {}, form, left, right, remove);
    });

    show(this.columnsPart, h("h3", { id: "settings-columns" }, "Columns"), rows.length ? h("ul", { class: "column-list" }, ...rows) : h("p", {}, "No columns yet."), this.addColumn);
  }

  /** The form adding a column: made once, so what is typed in it survives column events. */
  private readonly addColumn = this.addColumnForm();

  private addColumnForm(): HTMLFormElement {
    const title = h("input", { name: "column-title", required: true });
    const type = typeSelect("Column type", "text");
    const labelText = h("input", { name: "column-labels", placeholder: "Todo, Working, Done" });
    const typeField = h("label", { class: "field" }, h("span", {}, "Type"), type);
    const add = h(
      "form",
      { "aria-label": "Add column", class: "inline" },
      field("Column title", title),
      typeField,
      field("Labels", labelText),
      h("button", { type: "submit" }, "Add column"),
    );
    type.removeAttribute("aria-label"); // the label element names it
    add.addEventListener("submit", (event) => {
      event.preventDefault();
      const fields: Record<string, unknown> = { title: title.value.trim(), column_type: type.value };
      if (takesLabels(type.value)) fields["settings"] = { labels: parseLabels(labelText.value) };
      title.value = "";
      labelText.value = "";
      this.act("create_column", fields);
    });
    return add;
  }

  private renderMembers(): void {
    const name = (id: Uuid): string => this.people.get(id) ?? "Unknown person";
    const rows = [...this.members]
      .sort((a, b) => name(a.user_id).localeCompare(name(b.user_id)))
      .map((member) => {
        const role = roleSelect(`Role of ${name(member.user_id)}`, member.role);
        role.addEventListener("change", () => {
          this.act("set_member", { user_id: member.user_id, role: role.value });
        });
        const remove = h("button", { type: "button", class: "quiet danger", "aria-label": `Remove ${name(member.user_id)}` }, "Remove");
        remove.addEventListener("click", () => {
          this.act("remove_member", { user_id: member.user_id });
        });
        return h("li", {}, h("span", { class: "member-name" }, name(member.user_id)), role, remove);
      });
    const on = new Set(this.members.map((m) => m.user_id));
    const candidates = [...this.people.entries()].filter(([id]) => !on.has(id)).sort((a, b) => a[1].localeCompare(b[1]));
    const person = h("select", { name: "person" });
    for (const [id, n] of candidates) person.append(h("option", { value: id }, n));
    const role = roleSelect("Role", "editor");
    role.removeAttribute("aria-label");
    const add = h(
      "form",
      { "aria-label": "Add member", class: "inline" },
      h("label", { class: "field" }, h("span", {}, "Person"), person),
      h("label", { class: "field" }, h("span", {}, "Role"), role),
      h("button", { type: "submit", disabled: candidates.length === 0 }, "Add member"),
    );
    add.addEventListener("submit", (event) => {
      event.preventDefault();
      if (person.value) this.act("set_member", { user_id: person.value, role: role.value });
    });
    show(
      this.membersPart,
      h("h3", { id: "settings-members" }, "Members"),
      h("ul", { class: "member-list" }, ...rows),
      candidates.length ? add : h("p", {}, "Every member of the organization is on this board."),
    );
  }
}
