// The app shell: who is signed in, the routes (`/`, `/orgs/{org}`, `/orgs/{org}/boards/{board}`,
// all served index.html by the server), the org switcher and the boards list. The board itself
// is `board.ts`.

import "./app.css";
import { ApiError, call } from "./api";
import { BoardView } from "./board";
import { field, h, show } from "./dom";
import type { BoardList, BoardWithRole, CreatedBoard, Me, Organization, OrganizationList, OrgMemberList, SessionAnswer, User } from "./wire";

const app = document.getElementById("app") as HTMLElement;
let user: User | null = null;
let boardView: BoardView | null = null;

function navigate(path: string): void {
  history.pushState(null, "", path);
  void route();
}

function link(path: string, label: string): HTMLAnchorElement {
  return h(
    "a",
    {
      href: path,
      onclick: (event: Event) => {
        event.preventDefault();
        navigate(path);
      },
    },
    label,
  );
}

function message(error: unknown): string {
  return error instanceof ApiError ? error.message : "Something went wrong. Try again.";
}

/** A form whose submit runs `action`, showing its error in the form. */
function form(label: string, fields: Node[], submit: string, action: () => Promise<void>): HTMLFormElement {
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

function input(name: string, type = "text", autocomplete?: string): HTMLInputElement {
  return h("input", { name, type, required: true, autocomplete });
}

function signInPage(): HTMLElement {
  const loginEmail = input("email", "email", "username");
  const loginPassword = input("password", "password", "current-password");
  const name = input("name", "text", "name");
  const email = input("email", "email", "email");
  const password = input("password", "password", "new-password");
  const signedIn = (answer: SessionAnswer): void => {
    user = answer.user;
    navigate("/");
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
  return h(
    "header",
    {},
    link("/", "Boardroom"),
    orgs.length > 0 ? switcher : null,
    h("span", { class: "who" }, me.name),
    signOut,
  );
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

async function route(): Promise<void> {
  boardView?.stop();
  boardView = null;
  if (!user) {
    try {
      user = (await call<Me>("GET", "/me")).user;
    } catch {
      show(app, signInPage());
      return;
    }
  }
  const me = user;
  const orgs = (await call<OrganizationList>("GET", "/orgs")).organizations;
  const [, section, orgId, sub, boardId] = location.pathname.split("/");
  const current = section === "orgs" ? orgs.find((o) => o.id === orgId) : orgs[0];
  if (!current) {
    show(app, header(me, orgs, undefined), h("div", { class: "welcome" }, h("h1", {}, "Create your first organization"), newOrgForm()));
    return;
  }
  if (section !== "orgs") {
    history.replaceState(null, "", `/orgs/${current.id}`);
  }
  if (sub === "boards" && boardId) {
    const members = (await call<OrgMemberList>("GET", `/orgs/${current.id}/members`)).members;
    const people = new Map(members.map((m) => [m.user_id, m.name]));
    const place = h("div", { class: "board" });
    show(app, header(me, orgs, current), h("nav", {}, link(`/orgs/${current.id}`, "All boards")), place);
    boardView = new BoardView(boardId, place, people, (why) => {
      boardView?.stop();
      show(place, h("p", { class: "error", role: "alert" }, why), link(`/orgs/${current.id}`, "Back to the boards"));
    });
    return;
  }
  const boards = (await call<BoardList>("GET", `/orgs/${current.id}/boards`)).boards;
  show(app, header(me, orgs, current), boardsPage(current, boards));
}

window.addEventListener("popstate", () => void route());
// Unexpected failures reach the page, not only the console.
window.addEventListener("unhandledrejection", (event) => {
  show(app, h("p", { class: "error", role: "alert" }, message(event.reason)));
});
void route().catch((error: unknown) => {
  show(app, h("p", { class: "error", role: "alert" }, message(error)));
});
