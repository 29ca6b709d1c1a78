// The organization's plan (`/orgs/{org}/plan`): the plan, its billing status and each limit with
// what the organization uses of it (`GET /orgs/{org}`). When the server has billing on
// (`GET /config`), admins get Stripe Checkout for a paid plan and the Billing Portal.

import "./admin.css";
import { call } from "./api";
import { h, show } from "./dom";
import { attempt, errorLine } from "./ui";
import type { BillingRedirect, ClientConfig, LimitUse, Organization, Plan } from "./wire";

const LIMITS: [keyof NonNullable<Organization["limits"]>, string][] = [
  ["boards", "Boards"],
  ["members", "Members"],
  ["api_keys", "API keys"],
  ["webhooks", "Webhooks"],
  ["storage_bytes", "Attachment storage"],
];

const PAID: [Plan, string][] = [
  ["pro", "Pro"],
  ["enterprise", "Enterprise"],
];

function amount(key: string, value: number): string {
  if (key !== "storage_bytes") return String(value);
  if (value < 1024 * 1024) return `${Math.round(value / 1024)} KiB`;
  return `${(value / (1024 * 1024)).toFixed(1)} MiB`;
}

function usage(key: string, use: LimitUse): string {
  return use.limit === null || use.limit === undefined ? `${amount(key, use.used)} (no limit)` : `${amount(key, use.used)} of ${amount(key, use.limit)}`;
}

export function planPage(org: Organization): HTMLElement {
  const error = errorLine();
  const body = h("div", {});
  attempt(error, async () => {
    const [full, config] = await Promise.all([call<Organization>("GET", `/orgs/${org.id}`), call<ClientConfig>("GET", "/config")]);
    const limits = full.limits;
    const table = limits
      ? h(
          "table",
          { class: "admin-table", "aria-label": "Limits" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "What"), h("th", { scope: "col" }, "Used"))),
          h("tbody", {}, ...LIMITS.map(([key, label]) => h("tr", { "data-limit": key }, h("th", { scope: "row" }, label), h("td", {}, usage(key, limits[key]))))),
        )
      : null;
    const go = (path: string, body?: unknown) => () => {
      attempt(error, async () => {
        const redirect = await call<BillingRedirect>("POST", `/orgs/${org.id}/billing/${path}`, body);
        location.assign(redirect.url);
      });
    };
    const billing =
      config.billing && org.role === "admin"
        ? h(
            "section",
            {},
            h("h2", {}, "Billing"),
            h(
              "div",
              { class: "actions" },
              ...PAID.filter(([plan]) => plan !== full.plan).map(([plan, label]) => h("button", { type: "button", onclick: go("checkout", { plan }) }, `Subscribe to ${label}`)),
              h("button", { type: "button", class: "quiet", onclick: go("portal") }, "Manage billing"),
            ),
          )
        : null;
    show(
      body,
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Plan"),
        h("dd", { "data-plan": full.plan }, full.plan),
        h("dt", {}, "Billing"),
        h("dd", {}, (full.billing_status ?? "none").replace("_", " ")),
      ),
      table,
      billing,
    );
  });
  return h("div", { class: "admin-page" }, h("h1", {}, `Plan of ${org.name}`), error, body);
}
