// The organization's audit log (`/orgs/{org}/audit-log`, for admins): newest first, filtered by
// action (the filter the API offers), paged with the API's cursor: "Older" follows
// `next_cursor`, "Newer" goes back to the page before.

import "./admin.css";
import { call } from "./api";
import { h, show } from "./dom";
import { attempt, choice, errorLine, when } from "./ui";
import type { AuditEntry, AuditLog, OrgMemberList, Organization } from "./wire";

/** The actions the log records (`AuditAction` in actors/src/audit.rs). */
const ACTIONS = [
  "signup",
  "login.succeeded",
  "login.failed",
  "logout",
  "password.changed",
  "password.change_failed",
  "password.reset",
  "session.revoked",
  "api_key.created",
  "api_key.updated",
  "api_key.revoked",
  "org.created",
  "member.added",
  "member.role_changed",
  "member.removed",
  "invitation.created",
  "invitation.revoked",
  "invitation.declined",
  "board.member_added",
  "board.member_role_changed",
  "board.member_removed",
  "board.deleted",
  "board.exported",
  "webhook.created",
  "webhook.updated",
  "webhook.secret_rotated",
  "webhook.deleted",
  "webhook.disabled",
  "plan.changed",
  "subscription.cancelled",
  "org.exported",
  "data.exported",
  "email.verified",
  "email.changed",
  "superadmin.bypass",
];

/** Rows per page. */
const PAGE = 25;

export function auditPage(org: Organization): HTMLElement {
  const error = errorLine();
  const rows = h("div", {});
  const [actionField, action] = choice("Action", "action", [["", "Any action"], ...ACTIONS.map((a): [string, string] => [a, a])], "");
  const older = h("button", { type: "button" }, "Older");
  const newer = h("button", { type: "button" }, "Newer");
  const where = h("span", { class: "role", role: "status" });
  // The cursors of the pages shown so far: the last is this page's (undefined: the newest).
  let cursors: (number | undefined)[] = [undefined];
  let next: number | null = null;
  let names = new Map<string, string>();

  async function load(): Promise<void> {
    const cursor = cursors[cursors.length - 1];
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (cursor !== undefined) query.set("cursor", String(cursor));
    if (action.value) query.set("action", action.value);
    const page = await call<AuditLog>("GET", `/orgs/${org.id}/audit-log?${query.toString()}`);
    next = page.next_cursor;
    older.disabled = next === null;
    newer.disabled = cursors.length <= 1;
    where.textContent = `Page ${cursors.length}`;
    show(rows, page.entries.length > 0 ? table(page.entries) : h("p", {}, "Nothing recorded."));
  }

  function table(entries: AuditEntry[]): HTMLElement {
    return h(
      "table",
      { class: "admin-table", "aria-label": "Audit log" },
      h("thead", {}, h("tr", {}, ...["When", "Action", "Actor", "Target", "Details", "From"].map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        ...entries.map((entry) =>
          h(
            "tr",
            { "data-action": entry.action },
            h("td", {}, when(entry.created_at)),
            h("th", { scope: "row" }, entry.action),
            h("td", {}, entry.actor_id ? (names.get(entry.actor_id) ?? entry.actor_id) : ""),
            h("td", { class: "wrap" }, entry.target ? (names.get(entry.target) ?? entry.target) : ""),
            h("td", { class: "wrap" }, details(entry.metadata), entry.bypass ? " (superadmin bypass)" : ""),
            h("td", {}, entry.ip ?? ""),
          ),
        ),
      ),
    );
  }

  action.addEventListener("change", () => {
    cursors = [undefined];
    attempt(error, load);
  });
  older.addEventListener("click", () => {
    if (next === null) return;
    cursors.push(next);
    attempt(error, load);
  });
  newer.addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    attempt(error, load);
  });
  attempt(error, async () => {
    const members = await call<OrgMemberList>("GET", `/orgs/${org.id}/members`);
    names = new Map(members.members.map((m) => [m.user_id, m.name]));
    await load();
  });
  return h(
    "div",
    { class: "admin-page" },
    h("h1", {}, `Audit log of ${org.name}`),
    h("div", { class: "toolbar" }, actionField, h("nav", { class: "pager", "aria-label": "Audit log pages" }, newer, where, older)),
    error,
    rows,
  );
}

/** The metadata as short `key: value` text. */
function details(metadata: unknown): string {
  if (metadata === null || typeof metadata !== "object") return "";
  return Object.entries(metadata as Record<string, unknown>)
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join("; ");
}
