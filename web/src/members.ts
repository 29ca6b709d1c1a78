// The organization's members (`/orgs/{org}/members`): everyone sees who is in it; admins add
// people by email (a verified account joins at once, any other address is invited), change
// roles, remove members, and see and revoke pending invitations.

import "./admin.css";
import { call } from "./api";
import { field, h, show } from "./dom";
import { attempt, choice, errorLine, form, input, statusLine, when } from "./ui";
import type { Invitation, InvitationList, InvitationSent, OrgMember, OrgMemberList, Organization, OrgRole, User } from "./wire";

const ROLES: [OrgRole, string][] = [
  ["member", "Member"],
  ["admin", "Admin"],
];

export function membersPage(org: Organization, me: User): HTMLElement {
  const admin = org.role === "admin";
  const status = statusLine();
  const error = errorLine();
  const members = h("div", {});
  const invitations = h("div", {});

  async function load(): Promise<void> {
    const list = (await call<OrgMemberList>("GET", `/orgs/${org.id}/members`)).members;
    show(members, membersTable(list));
    if (admin) {
      const pending = (await call<InvitationList>("GET", `/orgs/${org.id}/invitations`)).invitations;
      show(invitations, h("h2", {}, "Pending invitations"), invitationsList(pending));
    }
  }

  function membersTable(list: OrgMember[]): HTMLElement {
    const rows = list.map((member) => {
      const you = member.user_id === me.id;
      const name = you ? `${member.name} (you)` : member.name;
      let role: Node = h("span", {}, member.role);
      let remove: Node | null = null;
      if (admin) {
        const select = h("select", { "aria-label": `Role of ${member.name}` });
        for (const [value, text] of ROLES) {
          select.append(h("option", { value, selected: value === member.role }, text));
        }
        select.addEventListener("change", () => {
          attempt(error, async () => {
            status.textContent = "";
            try {
              const changed = await call<OrgMember>("PATCH", `/orgs/${org.id}/members/${member.user_id}`, { role: select.value });
              status.textContent = `${changed.name} is now ${changed.role === "admin" ? "an admin" : "a member"}.`;
            } finally {
              await load();
            }
          });
        });
        role = select;
        remove = h(
          "button",
          {
            type: "button",
            class: "quiet",
            "aria-label": `Remove ${member.name}`,
            onclick: () => {
              if (!confirm(`Remove ${member.name} from ${org.name}?`)) return;
              attempt(error, async () => {
                status.textContent = "";
                await call("DELETE", `/orgs/${org.id}/members/${member.user_id}`);
                status.textContent = `${member.name} was removed.`;
                await load();
              });
            },
          },
          "Remove",
        );
      }
      return h(
        "tr",
        {},
        h("th", { scope: "row" }, name),
        h("td", {}, member.email),
        h("td", {}, role),
        h("td", {}, when(member.joined_at)),
        admin ? h("td", {}, remove) : null,
      );
    });
    return h(
      "table",
      { class: "admin-table", "aria-label": "Members" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Name"),
          h("th", { scope: "col" }, "Email"),
          h("th", { scope: "col" }, "Role"),
          h("th", { scope: "col" }, "Joined"),
          admin ? h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")) : null,
        ),
      ),
      h("tbody", {}, ...rows),
    );
  }

  function invitationsList(pending: Invitation[]): HTMLElement {
    if (pending.length === 0) return h("p", {}, "No pending invitations.");
    return h(
      "ul",
      { class: "admin-list", "aria-label": "Pending invitations" },
      ...pending.map((invitation) =>
        h(
          "li",
          {},
          h("span", {}, invitation.email),
          h("span", { class: "role" }, invitation.role),
          h("span", { class: "role" }, `expires ${when(invitation.expires_at)}`),
          h(
            "button",
            {
              type: "button",
              class: "quiet",
              "aria-label": `Revoke the invitation to ${invitation.email}`,
              onclick: () => {
                attempt(error, async () => {
                  await call("DELETE", `/orgs/${org.id}/invitations/${invitation.id}`);
                  status.textContent = `The invitation to ${invitation.email} was revoked.`;
                  await load();
                });
              },
            },
            "Revoke",
          ),
        ),
      ),
    );
  }

  const page = h("div", { class: "admin-page" }, h("h1", {}, `Members of ${org.name}`), status, error, members);
  if (admin) {
    const email = input("member-email", "email", "off");
    const [roleField, role] = choice("Role", "member-role", ROLES, "member");
    page.append(
      h("h2", {}, "Add a member"),
      h("p", { class: "hint" }, "A person whose account has this verified address joins at once; any other address gets an invitation by mail."),
      form("Add a member", [field("Email", email), roleField], "Add member", async () => {
        status.textContent = "";
        const answer = await addMember(org, email.value, role.value);
        status.textContent =
          "invitation" in answer
            ? `No verified account has ${answer.invitation.email} yet: an invitation was mailed.`
            : `${answer.name} joined as ${answer.role}.`;
        email.value = "";
        await load();
      }),
      invitations,
    );
  }
  attempt(error, load);
  return page;
}

/** `POST /orgs/{org}/members`: the member (201) or, for another address, the invitation (202). */
function addMember(org: Organization, email: string, role: string): Promise<OrgMember | InvitationSent> {
  return call<OrgMember | InvitationSent>("POST", `/orgs/${org.id}/members`, { email, role });
}
