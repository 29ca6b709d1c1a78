// API keys (`/orgs/{org}/api-keys`): a member sees and manages their own keys, an admin every
// key of the organization (the API decides which it lists). Create with a name, scopes and an
// optional expiry; the whole key is shown once with a copy button; re-scope; revoke.

import "./admin.css";
import { call } from "./api";
import { field, h, show } from "./dom";
import { attempt, errorLine, form, input, secretOnce, statusLine, when } from "./ui";
import type { ApiKey, ApiKeyList, CreatedApiKey, OrgMember, OrgMemberList, Organization, Scope } from "./wire";

export const SCOPES: [Scope, string][] = [
  ["boards:read", "Read boards"],
  ["boards:write", "Change boards"],
  ["items:read", "Read items"],
  ["items:write", "Change items"],
  ["updates:read", "Read comments"],
  ["updates:write", "Write comments"],
];

/** A fieldset of scope checkboxes, each labelled with its wire name. */
function scopeBoxes(legend: string, checked: readonly Scope[]): [HTMLFieldSetElement, () => Scope[]] {
  const boxes = SCOPES.map(([scope, text]) => {
    const box = h("input", { type: "checkbox", name: "scope", value: scope, checked: checked.includes(scope) });
    return [scope, box, h("label", { class: "check" }, box, h("span", {}, scope), h("span", { class: "role" }, text))] as const;
  });
  const set = h("fieldset", { class: "scopes" }, h("legend", {}, legend), ...boxes.map(([, , label]) => label));
  return [set, () => boxes.filter(([, box]) => box.checked).map(([scope]) => scope)];
}

export function apiKeysPage(org: Organization): HTMLElement {
  const status = statusLine();
  const error = errorLine();
  const shown = h("div", {});
  const list = h("div", {});
  let names = new Map<string, string>();

  async function load(): Promise<void> {
    const [keys, members] = await Promise.all([
      call<ApiKeyList>("GET", `/orgs/${org.id}/api-keys`),
      call<OrgMemberList>("GET", `/orgs/${org.id}/members`),
    ]);
    names = new Map(members.members.map((m: OrgMember) => [m.user_id, m.name]));
    const live = keys.api_keys.filter((key) => key.revoked_at === null);
    show(list, live.length > 0 ? h("ul", { class: "admin-list keys", "aria-label": "API keys" }, ...live.map(row)) : h("p", {}, "No API keys yet."));
  }

  function row(key: ApiKey): HTMLElement {
    const [scopes, chosen] = scopeBoxes(`Scopes of ${key.name}`, key.scopes);
    const rescope = form(`Scopes of ${key.name}`, [scopes], "Save scopes", async () => {
      const updated = await call<ApiKey>("PATCH", `/orgs/${org.id}/api-keys/${key.id}`, { scopes: chosen() });
      status.textContent = `${updated.name} now has ${updated.scopes.join(", ")}.`;
      await load();
    });
    return h(
      "li",
      { "data-key": key.id },
      h("div", { class: "key-head" },
        h("strong", {}, key.name),
        h("code", {}, `${key.prefix}…`),
        h("span", { class: "role" }, `by ${names.get(key.user_id) ?? "a former member"}`),
        h("span", { class: "role" }, key.expires_at ? `expires ${when(key.expires_at)}` : "no expiry"),
        h("span", { class: "role" }, `${key.rate_limit_per_minute}/min`),
        h(
          "button",
          {
            type: "button",
            class: "quiet",
            "aria-label": `Revoke ${key.name}`,
            onclick: () => {
              if (!confirm(`Revoke the key ${key.name}? Programs using it stop at once.`)) return;
              attempt(error, async () => {
                await call("DELETE", `/orgs/${org.id}/api-keys/${key.id}`);
                status.textContent = `${key.name} was revoked.`;
                show(shown);
                await load();
              });
            },
          },
          "Revoke",
        ),
      ),
      rescope,
    );
  }

  const name = input("key-name", "text", "off");
  const expires = h("input", { name: "key-expires", type: "date" });
  const [scopes, chosen] = scopeBoxes("Scopes", ["boards:read", "items:read"]);
  const create = form("New API key", [field("Key name", name), field("Expires on (optional)", expires), scopes], "Create key", async () => {
    const body: { name: string; scopes: Scope[]; expires_at?: string } = { name: name.value, scopes: chosen() };
    if (expires.value) body.expires_at = new Date(`${expires.value}T23:59:59`).toISOString();
    const created = await call<CreatedApiKey>("POST", `/orgs/${org.id}/api-keys`, body);
    show(shown, secretOnce(`The key ${created.name}`, created.key));
    status.textContent = `${created.name} was created.`;
    name.value = "";
    await load();
  });
  attempt(error, load);
  return h(
    "div",
    { class: "admin-page" },
    h("h1", {}, `API keys of ${org.name}`),
    h("p", { class: "hint" }, org.role === "admin" ? "Every key of the organization. A key acts as the person who made it, only in this organization, and only for its scopes." : "Your keys. A key acts as you, only in this organization, and only for its scopes."),
    status,
    error,
    shown,
    list,
    h("h2", {}, "Create a key"),
    create,
  );
}
