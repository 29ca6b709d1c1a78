// Pieces the pages share: navigation inside the app (main.ts routes on the `br:navigate`
// event), links, forms that show their own errors, labelled inputs and selects, dates, and a
// copy-to-clipboard control for secrets shown once.

import { ApiError } from "./api";
import { h } from "./dom";

/** Goes to `path` inside the app, without a reload. */
export function navigate(path: string): void {
  history.pushState(null, "", path);
  window.dispatchEvent(new Event("br:navigate"));
}

export function link(path: string, label: string, attrs: Record<string, string> = {}): HTMLAnchorElement {
  return h(
    "a",
    {
      ...attrs,
      href: path,
      onclick: (event: Event) => {
        event.preventDefault();
        navigate(path);
      },
    },
    label,
  );
}

/** What to tell a person about a failed call. */
export function message(error: unknown): string {
  if (!(error instanceof ApiError)) return "Something went wrong. Try again.";
  switch (error.code) {
    case "last_admin":
      return "An organization needs an admin: make someone else an admin first.";
    case "invalid_token":
      return "This link is not valid any more: it was used already, or it expired. Ask for a new one.";
    case "rate_limited":
      return "Too many attempts. Wait a little and try again.";
    default:
      // The server's messages are sentences without their first capital.
      return error.message.charAt(0).toUpperCase() + error.message.slice(1);
  }
}

/** A form whose submit runs `action`, showing its error in the form. */
export function form(label: string, fields: Node[], submit: string, action: () => Promise<void>): HTMLFormElement {
  const error = h("p", { class: "error", role: "alert" });
  const element = h("form", { "aria-label": label }, ...fields, h("button", { type: "submit" }, submit), error);
  element.addEventListener("submit", (event) => {
    event.preventDefault();
    error.textContent = "";
    action().catch((e: unknown) => {
      error.textContent = message(e);
    });
  });
  return element;
}

export function input(name: string, type = "text", autocomplete?: string): HTMLInputElement {
  return h("input", { name, type, required: true, autocomplete });
}

/** A labelled select of `options` (value, text). */
export function choice(label: string, name: string, options: [string, string][], selected?: string): [HTMLLabelElement, HTMLSelectElement] {
  const select = h("select", { name });
  for (const [value, text] of options) {
    select.append(h("option", { value, selected: value === selected }, text));
  }
  return [h("label", { class: "field" }, h("span", {}, label), select), select];
}

/** A date and time as the person's browser writes them. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** A status line for what a page just did (`role="status"`, read out by screen readers). */
export function statusLine(): HTMLParagraphElement {
  return h("p", { class: "status-line", role: "status" });
}

/** An error line for a page's own actions. */
export function errorLine(): HTMLParagraphElement {
  return h("p", { class: "error", role: "alert" });
}

/** Runs `action`, putting its failure in `error`; clears `error` first. */
export function attempt(error: HTMLElement, action: () => Promise<void>): void {
  error.textContent = "";
  action().catch((e: unknown) => {
    error.textContent = message(e);
  });
}

/**
 * A secret shown once (an API key, a webhook secret): the value in a read-only field and a
 * copy button. Nothing keeps it after the page moves on.
 */
export function secretOnce(label: string, value: string): HTMLElement {
  const field = h("input", { type: "text", readonly: true, value, "aria-label": label, class: "secret" });
  const copied = h("span", { role: "status" });
  const copy = h("button", { type: "button" }, "Copy");
  copy.addEventListener("click", () => {
    field.select();
    navigator.clipboard.writeText(value).then(
      () => {
        copied.textContent = "Copied.";
      },
      () => {
        copied.textContent = "Copy it from the field: the browser refused the clipboard.";
      },
    );
  });
  return h(
    "div",
    { class: "once" },
    h("p", {}, `${label}: shown this once. Copy it now; it cannot be shown again.`),
    field,
    copy,
    copied,
  );
}
