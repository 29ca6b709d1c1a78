// Account pages: the address's verification (a notice with "Resend verification email", and
// `/verify-email?token=…`, the mailed link), password reset (`/reset-password` to ask,
// `/reset-password?token=…` from the mail to choose a new one), the person's invitations
// (`/invitations`, and `/invitations/{id}` from the invitation mail) and `/account`.

import "./admin.css";
import { ApiError, call } from "./api";
import { field, h, show } from "./dom";
import { attempt, errorLine, form, input, link, statusLine, when } from "./ui";
import type { Invitation, InvitationList, OrgMember, User } from "./wire";

/** The notice an unverified account sees, with the resend control; `null` once verified. */
export function verificationNotice(me: User): HTMLElement | null {
  if (me.email_verified) return null;
  const status = h("span", { role: "status" });
  const resend = h("button", { type: "button", class: "quiet" }, "Resend verification email");
  resend.addEventListener("click", () => {
    status.textContent = "";
    call("POST", "/auth/verify-email/resend").then(
      () => {
        status.textContent = `A new link is on its way to ${me.email}.`;
      },
      (error: unknown) => {
        status.textContent = error instanceof ApiError && error.code === "rate_limited" ? "A link was sent a moment ago. Wait a little before asking again." : "The link could not be sent. Try again later.";
      },
    );
  });
  return h("div", { class: "notice", role: "region", "aria-label": "Email verification" }, h("span", {}, `Confirm your address ${me.email} with the link we mailed you.`), resend, status);
}

/** `/verify-email?token=…`: uses the mailed token at once. Works signed in or out. */
export function verifyEmailPage(signedIn: boolean, verified: () => void): HTMLElement {
  const token = new URLSearchParams(location.search).get("token") ?? "";
  const status = h("p", { role: "status" }, "Confirming your address…");
  const error = errorLine();
  const next = h("p", {});
  attempt(error, async () => {
    try {
      if (!token) throw new ApiError(400, "invalid_token", "no token");
      await call("POST", "/auth/verify-email", { token });
      status.textContent = "Your address is confirmed.";
      verified();
    } catch (e) {
      status.textContent = "";
      throw e;
    } finally {
      show(next, link("/", signedIn ? "Continue to Boardroom" : "Sign in"));
    }
  });
  return h("div", { class: "auth" }, h("h1", {}, "Confirm your address"), status, error, next);
}

/** `/reset-password`: asks for a link; with `?token=…`, sets the new password. */
export function resetPasswordPage(): HTMLElement {
  const token = new URLSearchParams(location.search).get("token");
  const status = statusLine();
  if (!token) {
    const email = input("email", "email", "username");
    return h(
      "div",
      { class: "auth" },
      h("h1", {}, "Reset your password"),
      form("Reset your password", [field("Email", email)], "Send reset link", async () => {
        await call("POST", "/auth/password-reset", { email: email.value });
        status.textContent = `If an account has the address ${email.value}, a link to choose a new password is on its way. It works once, within an hour.`;
      }),
      status,
      link("/", "Back to sign in"),
    );
  }
  const password = input("new-password", "password", "new-password");
  const again = input("new-password-again", "password", "new-password");
  const done = h("div", {});
  const chooser = form("Choose a new password", [field("New password", password), field("New password again", again)], "Set password", async () => {
    if (password.value !== again.value) throw new ApiError(400, "validation_failed", "The two passwords differ.");
    await call("POST", "/auth/password-reset/confirm", { token, new_password: password.value });
    // The token is spent: keep it out of the address bar and the history.
    history.replaceState(null, "", "/reset-password");
    chooser.remove();
    show(done, h("p", { role: "status" }, "Your password is set. Every session was signed out; sign in with the new password."), link("/", "Sign in"));
  });
  return h("div", { class: "auth" }, h("h1", {}, "Choose a new password"), chooser, done);
}

/** The signed-in person's open invitations, to accept or decline (`/invitations[/{id}]`). */
export function invitationsSection(me: User, joined: (org: string) => void): HTMLElement {
  const status = statusLine();
  const error = errorLine();
  const list = h("div", {});
  const focus = location.pathname.split("/")[2];

  async function load(): Promise<void> {
    const mine = (await call<InvitationList>("GET", "/invitations")).invitations;
    if (mine.length === 0) {
      show(
        list,
        h("p", {}, me.email_verified ? "No open invitations." : `Invitations show here once your address ${me.email} is confirmed.`),
      );
      return;
    }
    show(list, h("ul", { class: "admin-list", "aria-label": "Invitations" }, ...mine.map(row)));
  }

  function row(invitation: Invitation): HTMLElement {
    return h(
      "li",
      { "data-current": invitation.id === focus ? "true" : undefined },
      h("span", {}, `${invitation.organization_name}, as ${invitation.role}`),
      h("span", { class: "role" }, `until ${when(invitation.expires_at)}`),
      h(
        "button",
        {
          type: "button",
          "aria-label": `Accept the invitation to ${invitation.organization_name}`,
          onclick: () => {
            attempt(error, async () => {
              const member = await call<OrgMember>("POST", `/invitations/${invitation.id}/accept`);
              status.textContent = `You joined ${invitation.organization_name} as ${member.role}.`;
              joined(invitation.organization_id);
            });
          },
        },
        "Accept",
      ),
      h(
        "button",
        {
          type: "button",
          class: "quiet",
          "aria-label": `Decline the invitation to ${invitation.organization_name}`,
          onclick: () => {
            attempt(error, async () => {
              await call("POST", `/invitations/${invitation.id}/decline`);
              status.textContent = `You declined to join ${invitation.organization_name}.`;
              await load();
            });
          },
        },
        "Decline",
      ),
    );
  }

  attempt(error, load);
  return h("section", { class: "admin-page" }, h("h2", {}, "Invitations"), status, error, list);
}

/** `/account`: who is signed in, the address's state, invitations, a password change. */
export function accountPage(me: User, joined: (org: string) => void): HTMLElement {
  const current = input("current-password", "password", "current-password");
  const next = input("new-password", "password", "new-password");
  const status = statusLine();
  return h(
    "div",
    { class: "admin-page" },
    h("h1", {}, "Your account"),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Name"),
      h("dd", {}, me.name),
      h("dt", {}, "Email"),
      h("dd", {}, me.email, " ", h("span", { class: "role" }, me.email_verified ? "confirmed" : "not confirmed yet")),
      h("dt", {}, "Since"),
      h("dd", {}, when(me.created_at)),
    ),
    verificationNotice(me),
    invitationsSection(me, joined),
    h("h2", {}, "Change your password"),
    form("Change your password", [field("Current password", current), field("New password", next)], "Change password", async () => {
      await call("POST", "/auth/password", { current_password: current.value, new_password: next.value });
      current.value = "";
      next.value = "";
      status.textContent = "Your password is changed; your other sessions were signed out.";
    }),
    status,
    h("p", {}, link("/reset-password", "Forgot your password?")),
  );
}
