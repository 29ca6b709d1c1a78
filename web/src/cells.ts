// A board's cells: how each column type shows its value, and the in-place editor for each
// (docs/PROTOCOL.md, actors/src/values.rs for the shapes: a status is one label, a dropdown a
// list of labels, a person a list of user ids, a date `YYYY-MM-DD`, a link `{url, text}`).
// Editors commit with Enter (Ctrl+Enter in long text) or by leaving them, and cancel with
// Escape; a status commits as soon as it is chosen. The checkbox needs no editor: it toggles.

import { h } from "./dom";
import { columnLabels, type Column, type Uuid } from "./wire";

/** The id person cells hold for an erased account (docs/PROTOCOL.md, Erased people). */
const NIL = "00000000-0000-0000-0000-000000000000";

/** A stable colour for a status label, set through the CSSOM (the CSP allows no inline style). */
export function labelHue(label: string): number {
  let hash = 0;
  for (const char of label) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) % 360;
  return hash;
}

export function text(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

export function labels(column: Column): string[] {
  return columnLabels(column);
}

function personName(people: Map<Uuid, string>, id: string): string {
  if (id === NIL) return "Deleted user";
  return people.get(id) ?? "Unknown person";
}

function list(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(text);
  return value === null || value === undefined ? [] : [text(value)];
}

function linkParts(value: unknown): { url: string; text: string } {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const link = value as { url?: unknown; text?: unknown };
    return { url: text(link.url), text: text(link.text) };
  }
  return { url: text(value), text: "" };
}

/** A value as words, for messages (a conflict names both values). */
export function describe(column: Column | undefined, value: unknown, people: Map<Uuid, string>): string {
  if (value === null || value === undefined || value === "") return "(empty)";
  if (!column) return text(value);
  switch (column.type) {
    case "checkbox":
      return value === true ? "checked" : "unchecked";
    case "person":
      return list(value)
        .map((id) => personName(people, id))
        .join(", ");
    case "dropdown":
      return list(value).join(", ");
    case "link":
      return linkParts(value).url;
    default:
      return text(value);
  }
}

/** A value as the cell shows it. */
export function display(column: Column, value: unknown, people: Map<Uuid, string>, label: string): Node {
  if (column.type === "checkbox") {
    // Toggled by the board (click, Space or Enter on the cell); shown disabled when read-only.
    return h("input", { type: "checkbox", checked: value === true, "aria-label": label, tabindex: "-1" });
  }
  if (value === null || value === undefined) return h("span", { class: "empty" });
  switch (column.type) {
    case "number":
      return h("span", { class: "number" }, typeof value === "number" ? value.toLocaleString() : text(value));
    case "status": {
      const chip = h("span", { class: "status" }, text(value));
      chip.style.setProperty("--hue", String(labelHue(text(value))));
      return chip;
    }
    case "date": {
      const date = text(value);
      return h("time", { datetime: date }, date);
    }
    case "dropdown":
    case "person": {
      const names = list(value).map((v) => (column.type === "person" ? personName(people, v) : v));
      return h("span", { class: "chips" }, ...names.map((n) => h("span", { class: "chip" }, n)));
    }
    case "link": {
      const link = linkParts(value);
      if (!/^https?:\/\//i.test(link.url)) return h("span", {}, link.url);
      return h("a", { href: link.url, rel: "noopener noreferrer", target: "_blank", tabindex: "-1" }, link.text || link.url);
    }
    case "long_text":
      return h("span", { class: "long" }, text(value));
    case "text":
      return h("span", {}, text(value));
  }
}

/** An open editor: its element (placed in the cell), and what it holds now. */
export interface CellEditor {
  element: HTMLElement;
  focus(): void;
  value(): unknown;
}

export interface EditorEvents {
  commit(value: unknown): void;
  cancel(): void;
}

/** Commits on Enter (or Ctrl+Enter where Enter is a new line), cancels on Escape, commits when
 * focus leaves the editor. */
function keys(container: HTMLElement, editor: () => CellEditor, events: EditorEvents, newlines = false): void {
  let done = false;
  const finish = (commit: boolean): void => {
    if (done) return;
    done = true;
    if (commit) events.commit(editor().value());
    else events.cancel();
  };
  container.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      finish(false);
    } else if (event.key === "Enter" && (!newlines || event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      event.stopPropagation();
      finish(true);
    } else {
      // Arrow keys move within the editor, not between cells.
      event.stopPropagation();
    }
  });
  container.addEventListener("focusout", (event) => {
    const next = event.relatedTarget;
    if (next instanceof Node && container.contains(next)) return;
    // A re-render moves the editor and takes focus for a moment; it is not a person leaving.
    if (!container.isConnected || container.dataset["moving"] === "true") return;
    finish(true);
  });
}

/** The editor of the item's name (a line of text). */
export function nameEditor(name: string, label: string, events: EditorEvents): CellEditor {
  const input = h("input", { type: "text", value: name, "aria-label": label, maxlength: "500" });
  const element = h("div", { class: "editor" }, input);
  const editor: CellEditor = {
    element,
    focus: () => {
      input.focus();
      input.select();
    },
    value: () => input.value.trim(),
  };
  keys(element, () => editor, events);
  return editor;
}

/** The editor for `column`'s value `value`; `label` names its input ("Stage of Launch"). */
export function editor(column: Column, value: unknown, people: Map<Uuid, string>, label: string, events: EditorEvents): CellEditor {
  const element = h("div", { class: "editor" });
  let editor: CellEditor;
  switch (column.type) {
    case "text":
    case "number":
    case "date":
    case "link": {
      const type = { text: "text", number: "number", date: "date", link: "url" }[column.type];
      const start = column.type === "link" ? linkParts(value).url : text(value);
      const input = h("input", { type, value: start, "aria-label": label, step: column.type === "number" ? "any" : undefined });
      element.append(input);
      const previous = linkParts(value);
      editor = {
        element,
        focus: () => {
          input.focus();
          if (column.type === "text" || column.type === "link") input.select();
        },
        value: () => {
          const raw = input.value.trim();
          if (raw === "") return null;
          if (column.type === "number") return Number.isFinite(input.valueAsNumber) ? input.valueAsNumber : Number(raw);
          if (column.type === "link") return previous.text && previous.url ? { url: raw, text: previous.text } : raw;
          return raw;
        },
      };
      keys(element, () => editor, events);
      return editor;
    }
    case "long_text": {
      const area = h("textarea", { "aria-label": label, rows: "4" });
      area.value = text(value);
      element.append(area, h("span", { class: "hint" }, "Ctrl+Enter saves, Escape cancels"));
      editor = {
        element,
        focus: () => {
          area.focus();
        },
        value: () => (area.value.trim() === "" ? null : area.value),
      };
      keys(element, () => editor, events, true);
      return editor;
    }
    case "status": {
      const select = h("select", { "aria-label": label }, h("option", { value: "" }, "(none)"));
      for (const option of labels(column)) select.append(h("option", { value: option, selected: option === value }, option));
      element.append(select);
      editor = {
        element,
        focus: () => {
          select.focus();
        },
        value: () => (select.value === "" ? null : select.value),
      };
      keys(element, () => editor, events);
      // Choosing is the edit: no need to press Enter as well.
      select.addEventListener("change", () => {
        select.blur();
      });
      return editor;
    }
    case "dropdown":
    case "person": {
      const chosen = new Set(list(value));
      const options: [string, string][] =
        column.type === "dropdown" ? labels(column).map((l) => [l, l]) : [...people.entries()].sort((a, b) => a[1].localeCompare(b[1]));
      const boxes = options.map(([id, name]) => {
        const box = h("input", { type: "checkbox", value: id, checked: chosen.has(id) });
        return { id, box, label: h("label", { class: "choice" }, box, h("span", {}, name)) };
      });
      element.append(h("fieldset", { class: "choices" }, h("legend", {}, label), ...boxes.map((b) => b.label)));
      editor = {
        element,
        focus: () => {
          boxes[0]?.box.focus();
        },
        value: () => {
          const picked = boxes.filter((b) => b.box.checked).map((b) => b.id);
          return picked.length === 0 ? null : picked;
        },
      };
      keys(element, () => editor, events);
      return editor;
    }
    case "checkbox": {
      // Not opened as an editor (the board toggles it), but complete all the same.
      const box = h("input", { type: "checkbox", checked: value === true, "aria-label": label });
      element.append(box);
      editor = {
        element,
        focus: () => {
          box.focus();
        },
        value: () => box.checked,
      };
      keys(element, () => editor, events);
      return editor;
    }
  }
}

/** Whether two values are the same (values are JSON). */
export function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}
