// The app shell: who is signed in, the routes (all served index.html by the server: its
// CLIENT_ROUTES), the org switcher and the boards list. The board itself is `board.ts`; the
// admin pages are `members.ts`, `api_keys.ts`, `audit.ts`, `webhooks.ts` and `billing.ts`; the account pages
// (verification, password reset, invitations) are `account.ts`.
//
// Routes: `/`; `/orgs/{org}` (boards), `/orgs/{org}/members`, `/orgs/{org}/api-keys`,
// `/orgs/{org}/audit-log`, `/orgs/{org}/plan`; `/orgs/{org}/boards/{board}` and `…/{board}/webhooks`; `/account`,
// `/invitations[/{id}]`; and, signed in or not, `/verify-email?token=…` and
// `/reset-password[?token=…]` (the mailed links).

import "./app.css";
import { call } from "./api";
import { accountPage, invitationsSection, resetPasswordPage, verificationNotice, verifyEmailPage } from "./account";
import { apiKeysPage } from "./api_keys";
import { auditPage } from "./audit";
import { planPage } from "./billing";
import { BoardView } from "./board";
import { field, h, show } from "./dom";
import { membersPage } from "./members";
import { form, input, link, message, navigate } from "./ui";
import { webhooksPage } from "./webhooks";
import type { BoardList, BoardWithRole, ClientConfig, CreatedBoard, Me, Organization, OrganizationList, OrgMemberList, SessionAnswer, User } from "./wire";

const app = document.getElementById("app") as HTMLElement;
let user: User | null = null;
let boardView: BoardView | null = null;

/** Pages that need a session: after signing in there, the person stays on them. */
const KEEP_AFTER_SIGN_IN = ["orgs", "invitations", "account"];

function signInPage(config: ClientConfig | null): HTMLElement {
  const loginEmail = input("email", "email", "username");
  const loginPassword = input("password", "password", "current-password");
  const name = input("name", "text", "name");
  const email = input("email", "email", "email");
  const password = input("password", "password", "new-password");
  const signedIn = (answer: SessionAnswer): void => {
    user = answer.user;
    if (KEEP_AFTER_SIGN_IN.includes(location.pathname.split("/")[1] ?? "")) {
      void route();
    } else {
      navigate("/");
    }
  };
  return h(
    "div",
    { class: "auth" },
    h("h1", {}, "Boardroom"),
    h(
      "section",
      {},
      h("h2", {}, "Sign in"),
      form("Sign in", [field("Email", loginEmail), field("Password", loginPassword)], "Sign in", async () => {
        signedIn(await call("POST", "/auth/login", { email: loginEmail.value, password: loginPassword.value }));
      }),
      h("p", {}, link("/reset-password", "Forgot your password?")),
      // A full navigation: the server sends the browser on to Google and back.
      config?.google_sign_in ? h("p", {}, h("a", { href: "/api/v1/auth/google/start", class: "google" }, "Sign in with Google")) : null,
    ),
    h(
      "section",
      {},
      h("h2", {}, "Create an account"),
      form(
        "Create an account",
        [field("Name", name), field("Email", email), field("Password", password)],
        "Register",
        async () => {
          signedIn(await call("POST", "/auth/register", { name: name.value, email: email.value, password: password.value }));
        },
      ),
    ),
  );
}

function header(me: User, orgs: Organization[], current: Organization | undefined): HTMLElement {
  const switcher = h("select", {
    "aria-label": "Organization",
    onchange: (event: Event) => {
      navigate(`/orgs/${(event.target as HTMLSelectElement).value}`);
    },
  });
  for (const org of orgs) {
    switcher.append(h("option", { value: org.id, selected: org.id === current?.id }, org.name));
  }
  const signOut = h("button", { type: "button" }, "Sign out");
  signOut.addEventListener("click", () => {
    void call("POST", "/auth/logout").finally(() => {
      user = null;
      navigate("/");
    });
  });
  const top = h(
    "header",
    {},
    link("/", "Boardroom"),
    orgs.length > 0 ? switcher : null,
    h("span", { class: "who" }, me.name),
    link("/account", "Account"),
    signOut,
  );
  const notice = verificationNotice(me);
  if (!current) return notice ? h("div", {}, top, notice) : top;
  // The organization's pages; the audit log is for admins (the API refuses the others).
  const pages: [string, string][] = [
    [`/orgs/${current.id}`, "Boards"],
    [`/orgs/${current.id}/members`, "Members"],
    [`/orgs/${current.id}/api-keys`, "API keys"],
    [`/orgs/${current.id}/plan`, "Plan"],
  ];
  if (current.role === "admin") pages.push([`/orgs/${current.id}/audit-log`, "Audit log"]);
  const nav = h(
    "nav",
    { class: "org-pages", "aria-label": "Organization pages" },
    ...pages.map(([path, label]) => link(path, label, location.pathname === path ? { "aria-current": "page" } : {})),
  );
  return h("div", {}, top, notice, nav);
}

function newOrgForm(): HTMLFormElement {
  const name = input("org-name");
  return form("New organization", [field("Organization name", name)], "Create organization", async () => {
    const org = await call<Organization>("POST", "/orgs", { name: name.value });
    navigate(`/orgs/${org.id}`);
  });
}

function boardsPage(org: Organization, boards: BoardWithRole[]): HTMLElement {
  const name = input("board-name");
  const rows = boards.map((board) => {
    const role = board.role;
    const rename = h("input", { name: "rename", value: board.name, "aria-label": `New name for ${board.name}` });
    const owner = role === "owner";
    return h(
      "li",
      {},
      link(`/orgs/${org.id}/boards/${board.id}`, board.name),
      h("span", { class: "role" }, role),
      owner
        ? form(`Rename ${board.name}`, [rename], "Rename", async () => {
            await call("PATCH", `/boards/${board.id}`, { name: rename.value });
            void route();
          })
        : null,
      owner
        ? h(
            "button",
            {
              type: "button",
              onclick: () => {
                if (!confirm(`Delete the board "${board.name}" and everything on it?`)) return;
                void call("DELETE", `/boards/${board.id}`).then(route);
              },
            },
            "Delete",
          )
        : null,
    );
  });
  return h(
    "div",
    { class: "boards" },
    h("h1", {}, `Boards of ${org.name}`),
    rows.length > 0 ? h("ul", {}, ...rows) : h("p", {}, "No boards yet."),
    form("New board", [field("Board name", name)], "Create board", async () => {
      const created = await call<CreatedBoard>("POST", `/orgs/${org.id}/boards`, { name: name.value });
      navigate(`/orgs/${org.id}/boards/${created.id}`);
    }),
    h("section", {}, h("h2", {}, "Another organization"), newOrgForm()),
  );
}

/** The server's optional features, asked once (`GET /config`). */
let config: ClientConfig | null = null;

async function route(): Promise<void> {
  boardView?.stop();
  boardView = null;
  const [, section, orgId, sub, boardId, boardSub] = location.pathname.split("/");
  // The mailed links work signed in or out.
  if (section === "verify-email") {
    // Signed in or not, the link works; knowing which says where to go after.
    user ??= await call<Me>("GET", "/me").then(
      (answer) => answer.user,
      () => null,
    );
    show(
      app,
      verifyEmailPage(user !== null, () => {
        if (user) user = { ...user, email_verified: true };
      }),
    );
    return;
  }
  if (section === "reset-password") {
    show(app, resetPasswordPage());
    return;
  }
  if (!user) {
    try {
      user = (await call<Me>("GET", "/me")).user;
    } catch {
      config ??= await call<ClientConfig>("GET", "/config").catch(() => null);
      show(app, signInPage(config));
      return;
    }
  }
  const me = user;
  const orgs = (await call<OrganizationList>("GET", "/orgs")).organizations;
  const joined = (org: string): void => {
    navigate(`/orgs/${org}`);
  };
  if (section === "account") {
    show(app, header(me, orgs, undefined), accountPage(me, joined));
    return;
  }
  if (section === "invitations") {
    show(app, header(me, orgs, undefined), h("h1", {}, "Your invitations"), invitationsSection(me, joined));
    return;
  }
  const current = section === "orgs" ? orgs.find((o) => o.id === orgId) : orgs[0];
  if (!current) {
    show(
      app,
      header(me, orgs, undefined),
      h("div", { class: "welcome" }, h("h1", {}, "Create your first organization"), newOrgForm()),
      invitationsSection(me, joined),
    );
    return;
  }
  if (section !== "orgs") {
    history.replaceState(null, "", `/orgs/${current.id}`);
  }
  if (sub === "members") {
    show(app, header(me, orgs, current), membersPage(current, me));
    return;
  }
  if (sub === "api-keys") {
    show(app, header(me, orgs, current), apiKeysPage(current));
    return;
  }
  if (sub === "plan") {
    show(app, header(me, orgs, current), planPage(current));
    return;
  }
  if (sub === "audit-log") {
    show(app, header(me, orgs, current), auditPage(current));
    return;
  }
  if (sub === "boards" && boardId) {
    const boards = (await call<BoardList>("GET", `/orgs/${current.id}/boards`)).boards;
    const board = boards.find((b) => b.id === boardId);
    const back = link(`/orgs/${current.id}`, "All boards");
    if (boardSub === "webhooks" && board) {
      const toBoard = link(`/orgs/${current.id}/boards/${board.id}`, `Back to ${board.name}`);
      show(app, header(me, orgs, current), h("nav", {}, back, toBoard), webhooksPage(board));
      return;
    }
    const members = (await call<OrgMemberList>("GET", `/orgs/${current.id}/members`)).members;
    const people = new Map(members.map((m) => [m.user_id, m.name]));
    const place = h("div", { class: "board" });
    const hooks = board?.role === "owner" ? link(`/orgs/${current.id}/boards/${board.id}/webhooks`, "Webhooks") : null;
    show(app, header(me, orgs, current), h("nav", { class: "board-pages" }, back, hooks), place);
    boardView = new BoardView(boardId, place, people, (why) => {
      boardView?.stop();
      show(place, h("p", { class: "error", role: "alert" }, why), link(`/orgs/${current.id}`, "Back to the boards"));
    });
    return;
  }
  const boards = (await call<BoardList>("GET", `/orgs/${current.id}/boards`)).boards;
  show(app, header(me, orgs, current), boardsPage(current, boards));
}

window.addEventListener("br:navigate", () => void route());
window.addEventListener("popstate", () => void route());
// Unexpected failures reach the page, not only the console.
window.addEventListener("unhandledrejection", (event) => {
  show(app, h("p", { class: "error", role: "alert" }, message(event.reason)));
});
void route().catch((error: unknown) => {
  show(app, h("p", { class: "error", role: "alert" }, message(error)));
});
