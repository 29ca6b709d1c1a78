// A board's webhooks (`/orgs/{org}/boards/{board}/webhooks`, for the board's owners): list,
// create (the signing secret shown once), turn on and off, rotate the secret (the new one shown
// once), see recent deliveries and redeliver one, delete.

import "./admin.css";
import { call } from "./api";
import { field, h, show } from "./dom";
import { attempt, errorLine, form, input, secretOnce, statusLine, when } from "./ui";
import type { BoardWithRole, CreatedWebhook, Delivery, DeliveryList, Redelivery, RotatedSecret, Webhook, WebhookList } from "./wire";

/** The event kinds a webhook can subscribe to (protocol `events::EventKind`), or `*` for all. */
const KINDS = [
  "board.updated",
  "board.deleted",
  "member.added",
  "member.role_changed",
  "member.removed",
  "column.created",
  "column.updated",
  "column.deleted",
  "group.created",
  "group.updated",
  "group.deleted",
  "item.created",
  "item.updated",
  "item.moved",
  "item.archived",
  "item.deleted",
  "update.created",
  "update.edited",
  "update.deleted",
  "attachment.added",
  "attachment.deleted",
];

export function webhooksPage(board: BoardWithRole): HTMLElement {
  const status = statusLine();
  const error = errorLine();
  const shown = h("div", {});
  const list = h("div", {});
  const base = `/boards/${board.id}/webhooks`;

  async function load(): Promise<void> {
    const hooks = (await call<WebhookList>("GET", base)).webhooks;
    show(list, hooks.length > 0 ? h("ul", { class: "admin-list hooks", "aria-label": "Webhooks" }, ...hooks.map(row)) : h("p", {}, "No webhooks yet."));
  }

  function row(hook: Webhook): HTMLElement {
    const deliveries = h("div", { class: "deliveries" });
    const state = hook.enabled ? "on" : `off${hook.disabled_reason ? ` (${hook.disabled_reason})` : ""}`;
    const button = (text: string, label: string, action: () => Promise<void>): HTMLButtonElement =>
      h("button", { type: "button", class: "quiet", "aria-label": label, onclick: () => { attempt(error, action); } }, text);
    return h(
      "li",
      { "data-webhook": hook.id },
      h("div", { class: "key-head" },
        h("code", { class: "url" }, hook.url),
        h("span", { class: "role" }, hook.events.join(", ")),
        h("span", { class: "role" }, state),
        hook.consecutive_failures > 0 ? h("span", { class: "role" }, `${hook.consecutive_failures} failures in a row`) : null,
      ),
      h("div", { class: "actions" },
        button("Deliveries", `Deliveries of ${hook.url}`, async () => {
          const found = (await call<DeliveryList>("GET", `${base}/${hook.id}/deliveries?limit=50`)).deliveries;
          show(deliveries, deliveriesTable(hook, found));
        }),
        button(hook.enabled ? "Turn off" : "Turn on", `${hook.enabled ? "Turn off" : "Turn on"} ${hook.url}`, async () => {
          await call<Webhook>("PATCH", `${base}/${hook.id}`, { enabled: !hook.enabled });
          status.textContent = `${hook.url} is ${hook.enabled ? "off" : "on"}.`;
          await load();
        }),
        button("Rotate secret", `Rotate the secret of ${hook.url}`, async () => {
          const rotated = await call<RotatedSecret>("POST", `${base}/${hook.id}/rotate-secret`);
          show(shown, secretOnce(`The new secret of ${hook.url}`, rotated.secret), h("p", { class: "hint" }, `The previous secret keeps signing too until ${when(rotated.previous_secret_expires_at)}.`));
          status.textContent = "The secret was rotated.";
        }),
        button("Delete", `Delete ${hook.url}`, async () => {
          if (!confirm(`Delete the webhook to ${hook.url}?`)) return;
          await call("DELETE", `${base}/${hook.id}`);
          status.textContent = `The webhook to ${hook.url} was deleted.`;
          show(shown);
          await load();
        }),
      ),
      deliveries,
    );
  }

  function deliveriesTable(hook: Webhook, found: Delivery[]): HTMLElement {
    if (found.length === 0) return h("p", {}, "No deliveries yet.");
    return h(
      "table",
      { class: "admin-table", "aria-label": `Deliveries of ${hook.url}` },
      h("thead", {}, h("tr", {}, ...["Event", "Status", "Attempts", "Last answer", "When", ""].map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        ...found.map((d) =>
          h(
            "tr",
            {},
            h("td", {}, `${d.kind} #${d.seq}`),
            h("td", { "data-status": d.status }, d.status),
            h("td", {}, String(d.attempts)),
            h("td", {}, d.last_status_code !== null ? String(d.last_status_code) : (d.last_error ?? "")),
            h("td", {}, when(d.created_at)),
            h(
              "td",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "quiet",
                  "aria-label": `Redeliver ${d.kind} #${d.seq}`,
                  onclick: () => {
                    attempt(error, async () => {
                      const again = await call<Redelivery>("POST", `${base}/${hook.id}/deliveries/${d.id}/redeliver`);
                      status.textContent = `${d.kind} #${d.seq} is queued again (${again.status}).`;
                    });
                  },
                },
                "Redeliver",
              ),
            ),
          ),
        ),
      ),
    );
  }

  const url = input("webhook-url", "url", "off");
  const all = h("input", { type: "checkbox", name: "all-events", checked: true });
  const kinds = h("select", { name: "events", multiple: true, size: "6" });
  for (const kind of KINDS) kinds.append(h("option", { value: kind }, kind));
  const create = form(
    "New webhook",
    [
      field("URL", url),
      h("label", { class: "check" }, all, h("span", {}, "Every event")),
      h("label", { class: "field" }, h("span", {}, "Or these events"), kinds),
    ],
    "Create webhook",
    async () => {
      const events = all.checked ? ["*"] : Array.from(kinds.selectedOptions, (o) => o.value);
      const created = await call<CreatedWebhook>("POST", base, { url: url.value, events });
      show(shown, secretOnce(`The signing secret of ${created.url}`, created.secret));
      status.textContent = `The webhook to ${created.url} was created.`;
      url.value = "";
      await load();
    },
  );
  attempt(error, load);
  return h(
    "div",
    { class: "admin-page" },
    h("h1", {}, `Webhooks of ${board.name}`),
    h("p", { class: "hint" }, "Each change on the board is POSTed to these URLs, signed with the webhook's secret."),
    status,
    error,
    shown,
    list,
    h("h2", {}, "Add a webhook"),
    create,
  );
}
