// The item panel: a modal side panel with an item's comments ("updates": threads one reply
// deep) and its files. It opens from the "Open <item>" button on the item's row, takes the
// focus, closes on Escape or "Close" and gives the focus back to that row's button.
//
// Reads: `GET /boards/{board}/items/{item}/updates` and `…/attachments`; writes: `POST`, `PATCH`
// and `DELETE …/updates[/{update}]`, `POST …/attachments` (multipart) and
// `DELETE /boards/{board}/attachments/{attachment}`. Everyone else's changes arrive as the board's
// `update.*` and `attachment.*` events (handed over by the board view), and are patched into the
// open panel without redrawing what the person is typing.
//
// Who may do what is the server's rule (actors/src/board/apply.rs), mirrored so that nobody is
// offered a control the server would refuse: editors and owners write comments and attach files;
// the author alone edits or deletes a comment; an editor deletes a file they attached. Viewers
// read. Refusals are shown with the server's message.

import "./item_panel.css";
import { ApiError, call } from "./api";
import { h } from "./dom";
import type {
  Attachment,
  AttachmentDeleted,
  AttachmentList,
  BoardList,
  BoardRole,
  EventFrame,
  Me,
  Update,
  UpdateDeleted,
  UpdateList,
  Uuid,
} from "./wire";

/** What the panel needs to know about the person using it. */
interface Viewer {
  id: Uuid;
  role: BoardRole;
}

/** The item a panel is about: what its row knows. */
export interface ItemRef {
  id: Uuid;
  name: string;
}

function canWrite(role: BoardRole): boolean {
  return role === "editor" || role === "owner";
}

function message(error: unknown): string {
  return error instanceof ApiError ? error.message : "Something went wrong. Try again.";
}

function when(iso: string): HTMLTimeElement {
  const date = new Date(iso);
  const shown = Number.isNaN(date.getTime())
    ? iso
    : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  return h("time", { datetime: iso }, shown);
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** When a comment was last edited, as a number (0: never); the wire's times vary in precision. */
function editedAt(update: Update): number {
  return update.edited_at ? Date.parse(update.edited_at) : 0;
}

/** Oldest first: by creation time, then by id (time-ordered too). */
function byCreation(a: { created_at: string; id: Uuid }, b: { created_at: string; id: Uuid }): number {
  const difference = Date.parse(a.created_at) - Date.parse(b.created_at);
  if (difference !== 0 && !Number.isNaN(difference)) return difference;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** A labelled textarea (the label names it for people and for the tests alike). */
function textArea(label: string, value = ""): { label: HTMLLabelElement; input: HTMLTextAreaElement } {
  const input = h("textarea", { rows: "3", required: true });
  input.value = value;
  return { label: h("label", { class: "field" }, h("span", {}, label), input), input };
}

/** The `id` inside an event's data, for deletions. */
function idOf(data: unknown): Uuid | undefined {
  if (typeof data === "object" && data !== null && "id" in data) {
    const id = (data as { id: unknown }).id;
    return typeof id === "string" ? id : undefined;
  }
  return undefined;
}

/** The item panels of one board: at most one is open. Built by the board view. */
export class ItemPanels {
  private viewer: Promise<Viewer> | null = null;
  private panel: Panel | null = null;

  constructor(
    private readonly boardId: Uuid,
    private readonly people: Map<Uuid, string>,
    private readonly orgId: () => Uuid | undefined,
  ) {}

  /** The "Open <item>" button for an item's row. */
  button(item: ItemRef): HTMLButtonElement {
    const button = h("button", { type: "button", class: "item-open", "aria-label": `Open ${item.name}`, "data-open-item": item.id }, "Open");
    button.addEventListener("click", () => {
      this.open(item, button);
    });
    return button;
  }

  /** Opens the panel of `item`; `opener` gets the focus back when it closes. */
  open(item: ItemRef, opener: HTMLElement): void {
    this.panel?.close();
    const panel = new Panel(this.boardId, item, this.people, this.who(), () => {
      if (this.panel === panel) this.panel = null;
      // The board redraws its rows on every change: the button may be a new one by now.
      const button = opener.isConnected
        ? opener
        : document.querySelector<HTMLElement>(`[data-open-item="${CSS.escape(item.id)}"]`);
      button?.focus();
    });
    this.panel = panel;
  }

  /** A board event: comments and files of the open item, its renaming or deletion, and a
   * change of the person's own role. */
  event(event: EventFrame): void {
    if (event.kind.startsWith("member.")) {
      // The role decides the controls: ask again, and redraw an open panel with it.
      this.viewer = null;
      this.panel?.reconsider(this.who());
      return;
    }
    this.panel?.event(event);
  }

  /** Closes the open panel (the board is going away). */
  stop(): void {
    this.panel?.close();
  }

  /** Who is looking, and their role on this board (asked once, until a member event). */
  private who(): Promise<Viewer> {
    if (this.viewer) return this.viewer;
    const asked = (async () => {
      const [me, role] = await Promise.all([call<Me>("GET", "/me"), this.role()]);
      return { id: me.user.id, role };
    })();
    // A failure is asked again next time.
    asked.catch(() => {
      if (this.viewer === asked) this.viewer = null;
    });
    this.viewer = asked;
    return asked;
  }

  private async role(): Promise<BoardRole> {
    const org = this.orgId();
    if (!org) return "viewer";
    const boards = (await call<BoardList>("GET", `/orgs/${org}/boards`)).boards;
    return boards.find((board) => board.id === this.boardId)?.role ?? "viewer";
  }
}

/** One comment on screen: its list entry, the part redrawn on a change, its replies. */
interface CommentNode {
  li: HTMLLIElement;
  article: HTMLElement;
  files: HTMLUListElement;
  replies: HTMLOListElement | null;
}

/** One open panel. */
class Panel {
  private readonly dialog = h("dialog", { class: "item-panel", "aria-labelledby": "item-panel-title" });
  private readonly title = h("h2", { id: "item-panel-title", tabindex: "-1" });
  private readonly body = h("div", { class: "item-panel-body" }, h("p", { role: "status" }, "Loading…"));
  private readonly updates = new Map<Uuid, Update>();
  private readonly attachments = new Map<Uuid, Attachment>();
  /** Deleted while the lists were on their way: not to be brought back by them. */
  private readonly gone = new Set<Uuid>();
  private readonly nodes = new Map<Uuid, CommentNode>();
  /** Comments whose text is being edited here: a live change does not redraw them. */
  private readonly editing = new Set<Uuid>();
  private readonly threads = h("ol", { class: "comments" });
  private readonly files = h("ul", { class: "files" });
  private readonly notice = h("p", { class: "error", role: "alert" });
  private viewer: Viewer | null = null;
  private loaded = false;
  private closed = false;

  constructor(
    private readonly boardId: Uuid,
    private readonly item: ItemRef,
    private readonly people: Map<Uuid, string>,
    viewer: Promise<Viewer>,
    private readonly onClose: () => void,
  ) {
    this.title.textContent = item.name;
    const close = h("button", { type: "button", class: "secondary" }, "Close");
    close.addEventListener("click", () => {
      this.close();
    });
    this.dialog.append(h("div", { class: "item-panel-head" }, this.title, close), this.body);
    // Escape closes the dialog ("cancel"); "close" covers every way it ends.
    this.dialog.addEventListener("close", () => {
      this.finish();
    });
    document.body.append(this.dialog);
    this.dialog.showModal();
    this.title.focus();
    void this.load(viewer);
  }

  close(): void {
    if (this.dialog.open) this.dialog.close();
    else this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.dialog.remove();
    this.onClose();
  }

  private base(): string {
    return `/boards/${this.boardId}/items/${this.item.id}`;
  }

  private async load(viewer: Promise<Viewer>): Promise<void> {
    try {
      const [who, updates, attachments] = await Promise.all([
        viewer,
        call<UpdateList>("GET", `${this.base()}/updates`),
        call<AttachmentList>("GET", `${this.base()}/attachments`),
      ]);
      this.viewer = who;
      // Events may have come first: the newer of the two wins, and deletions stay deleted.
      for (const update of updates.updates) {
        const known = this.updates.get(update.id);
        if (this.gone.has(update.id) || (known && editedAt(known) >= editedAt(update))) continue;
        this.updates.set(update.id, update);
      }
      for (const attachment of attachments.attachments) {
        if (!this.gone.has(attachment.id)) this.attachments.set(attachment.id, attachment);
      }
      this.loaded = true;
      this.render();
    } catch (error) {
      this.body.replaceChildren(h("p", { class: "error", role: "alert" }, message(error)));
    }
  }

  /** The person's role may have changed: draw the controls again. */
  reconsider(viewer: Promise<Viewer>): void {
    viewer.then(
      (who) => {
        this.viewer = who;
        if (this.loaded && !this.closed) this.render();
      },
      () => {
        // Not known now: keep the controls drawn; the server still checks every write.
      },
    );
  }

  event(event: EventFrame): void {
    if (this.closed) return;
    const data = event.data;
    switch (event.kind) {
      case "item.updated":
      case "item.moved":
      case "item.archived": {
        // The item itself (flattened into the event's data).
        const changed = data as { id?: Uuid; name?: unknown };
        if (changed.id === this.item.id && typeof changed.name === "string") {
          this.item.name = changed.name;
          this.title.textContent = changed.name;
        }
        return;
      }
      case "item.deleted":
        if (idOf(data) === this.item.id) this.ended("This item was deleted.");
        return;
      case "update.created":
      case "update.edited": {
        const update = data as Update;
        if (update.item_id === this.item.id) this.upsertUpdate(update);
        return;
      }
      case "update.deleted": {
        const deleted = data as UpdateDeleted;
        if (deleted.item_id === this.item.id) this.removeUpdate(deleted.id);
        return;
      }
      case "attachment.added": {
        const attachment = data as Attachment;
        if (attachment.item_id === this.item.id) this.upsertAttachment(attachment);
        return;
      }
      case "attachment.deleted": {
        const deleted = data as AttachmentDeleted;
        if (deleted.item_id === this.item.id) this.removeAttachment(deleted.id);
        return;
      }
      default:
        return;
    }
  }

  private ended(why: string): void {
    this.loaded = false;
    this.body.replaceChildren(h("p", { class: "error", role: "alert" }, why));
  }

  private writer(): boolean {
    return this.viewer !== null && canWrite(this.viewer.role);
  }

  private mine(author: Uuid | null): boolean {
    return this.viewer !== null && author === this.viewer.id;
  }

  private author(update: Update): string {
    if (update.author_name) return update.author_name;
    const name = update.author_id ? this.people.get(update.author_id) : undefined;
    return name ?? "A former member";
  }

  // ----- drawing ---------------------------------------------------------------------------

  private render(): void {
    this.nodes.clear();
    this.editing.clear();
    this.threads.replaceChildren();
    const ordered = [...this.updates.values()].sort(byCreation);
    for (const update of ordered) if (!update.parent_id) this.place(update);
    for (const update of ordered) if (update.parent_id) this.place(update);
    this.drawFiles();
    const comments = h(
      "section",
      { class: "item-comments", "aria-labelledby": "item-panel-comments" },
      h("h3", { id: "item-panel-comments" }, "Comments"),
      this.threads,
      this.updates.size === 0 ? h("p", { class: "empty-comments" }, "No comments yet.") : null,
      this.writer() ? this.composer() : h("p", { class: "read-only" }, "Viewers read the comments; editors write them."),
    );
    const files = h(
      "section",
      { class: "item-files", "aria-labelledby": "item-panel-files" },
      h("h3", { id: "item-panel-files" }, "Files"),
      this.files,
      this.writer() ? this.uploader() : null,
    );
    this.body.replaceChildren(this.notice, comments, files);
  }

  /** Adds a comment's entry where it belongs: the thread's end, or its parent's replies. */
  private place(update: Update): void {
    const files = h("ul", { class: "files comment-files" });
    const li = h("li", { class: "comment", "data-update": update.id });
    const article = this.article(update);
    li.append(article, files);
    let replies: HTMLOListElement | null = null;
    if (!update.parent_id) {
      replies = h("ol", { class: "replies" });
      li.append(replies);
    }
    this.nodes.set(update.id, { li, article, files, replies });
    const parent = update.parent_id ? this.nodes.get(update.parent_id) : undefined;
    (parent?.replies ?? this.threads).append(li);
    this.drawCommentFiles(update.id);
  }

  private article(update: Update): HTMLElement {
    const author = this.author(update);
    const actions = h("div", { class: "comment-actions" });
    const article = h(
      "article",
      { "aria-label": `${update.parent_id ? "Reply" : "Comment"} by ${author}` },
      h(
        "header",
        {},
        h("strong", { class: "comment-author" }, author),
        " ",
        when(update.created_at),
        update.edited_at ? h("span", { class: "edited", title: `Edited ${update.edited_at}` }, " (edited)") : null,
      ),
      h("p", { class: "comment-body" }, update.body),
      actions,
    );
    if (this.writer()) {
      if (!update.parent_id) actions.append(this.action("Reply", () => { this.replyForm(update); }));
      if (this.mine(update.author_id)) {
        actions.append(
          this.action("Edit", () => { this.editForm(update.id); }),
          this.action("Delete", () => {
            this.confirm(actions, "Delete this comment?", async () => {
              await call("DELETE", `${this.base()}/updates/${update.id}`);
              this.removeUpdate(update.id);
            });
          }),
        );
      }
    }
    return article;
  }

  private action(label: string, run: () => void): HTMLButtonElement {
    const button = h("button", { type: "button", class: "secondary" }, label);
    button.addEventListener("click", run);
    return button;
  }

  /** Swaps `actions` for a question with "Yes, delete" and "Keep"; errors go to the notice. */
  private confirm(actions: HTMLElement, question: string, yes: () => Promise<void>): void {
    const before = [...actions.childNodes];
    const keep = this.action("Keep", () => {
      actions.replaceChildren(...before);
      (before.find((n) => n instanceof HTMLButtonElement && n.textContent === "Delete") as HTMLElement | undefined)?.focus();
    });
    const sure = h("button", { type: "button", class: "danger" }, "Yes, delete");
    sure.addEventListener("click", () => {
      sure.disabled = true;
      this.notice.textContent = "";
      yes().catch((error: unknown) => {
        this.notice.textContent = message(error);
        actions.replaceChildren(...before);
      });
    });
    actions.replaceChildren(h("span", { class: "question" }, question), sure, keep);
    keep.focus();
  }

  /** A form whose submit runs `action` with its error shown under it. */
  private form(label: string, fields: Node[], buttons: Node[], action: () => Promise<void>): HTMLFormElement {
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { "aria-label": label }, ...fields, ...buttons, error);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      error.textContent = "";
      const submit = form.querySelector<HTMLButtonElement>("button[type=submit]");
      if (submit) submit.disabled = true;
      action()
        .catch((e: unknown) => {
          error.textContent = message(e);
        })
        .finally(() => {
          if (submit) submit.disabled = false;
        });
    });
    // Ctrl+Enter (or Cmd+Enter) sends, as in most comment boxes.
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    return form;
  }

  /** The new comment's form, with an optional file attached to the comment once it exists. */
  private composer(): HTMLFormElement {
    const text = textArea("Comment");
    const file = h("input", { type: "file", name: "file" });
    const attach = h("label", { class: "field" }, h("span", {}, "Attach a file (optional)"), file);
    const form = this.form("New comment", [text.label, attach], [h("button", { type: "submit" }, "Post comment")], async () => {
      const update = await call<Update>("POST", `${this.base()}/updates`, { body: text.input.value });
      const chosen = file.files?.[0];
      form.reset();
      this.upsertUpdate(update);
      if (chosen) {
        // The comment stands even if its file is refused; the refusal says why.
        const attachment = await this.upload(chosen, update.id);
        this.upsertAttachment(attachment);
      }
    });
    return form;
  }

  private async upload(file: File, updateId?: Uuid): Promise<Attachment> {
    const body = new FormData();
    // The server reads `update_id` before `file`.
    if (updateId) body.append("update_id", updateId);
    body.append("file", file, file.name);
    return call<Attachment>("POST", `${this.base()}/attachments`, body);
  }

  private replyForm(parent: Update): void {
    const node = this.nodes.get(parent.id);
    if (!node) return;
    const open = node.li.querySelector<HTMLFormElement>(":scope > form.reply-form");
    if (open) {
      open.querySelector("textarea")?.focus();
      return;
    }
    const text = textArea("Reply");
    const cancel = this.action("Cancel", () => {
      form.remove();
      node.article.querySelector<HTMLButtonElement>(".comment-actions button")?.focus();
    });
    const form = this.form(
      `Reply to ${this.author(parent)}`,
      [text.label],
      [h("button", { type: "submit" }, "Post reply"), cancel],
      async () => {
        const update = await call<Update>("POST", `${this.base()}/updates`, { body: text.input.value, parent_id: parent.id });
        form.remove();
        this.upsertUpdate(update);
      },
    );
    form.classList.add("reply-form");
    this.escapeCancels(form, cancel);
    node.li.insertBefore(form, node.replies);
    text.input.focus();
  }

  private editForm(id: Uuid): void {
    const node = this.nodes.get(id);
    const update = this.updates.get(id);
    if (!node || !update || this.editing.has(id)) return;
    this.editing.add(id);
    const text = textArea("Text", update.body);
    const done = (): void => {
      this.editing.delete(id);
      const latest = this.updates.get(id);
      if (latest) this.redraw(latest);
      this.nodes.get(id)?.article.querySelector<HTMLButtonElement>(".comment-actions button")?.focus();
    };
    const cancel = this.action("Cancel", done);
    const form = this.form("Edit comment", [text.label], [h("button", { type: "submit" }, "Save"), cancel], async () => {
      const edited = await call<Update>("PATCH", `${this.base()}/updates/${id}`, { body: text.input.value });
      this.updates.set(id, edited);
      done();
    });
    this.escapeCancels(form, cancel);
    node.article.querySelector(".comment-body")?.replaceWith(form);
    node.article.querySelector(".comment-actions")?.replaceChildren();
    text.input.focus();
  }

  /** Escape inside a reply or edit form cancels that form instead of closing the panel. */
  private escapeCancels(form: HTMLFormElement, cancel: HTMLButtonElement): void {
    form.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.preventDefault();
      event.stopPropagation();
      cancel.click();
    });
  }

  /** Draws one comment again (keeping its replies and files), unless it is being edited. */
  private redraw(update: Update): void {
    const node = this.nodes.get(update.id);
    if (!node || this.editing.has(update.id)) return;
    const focused = node.article.contains(document.activeElement) ? document.activeElement?.textContent : null;
    const article = this.article(update);
    node.article.replaceWith(article);
    node.article = article;
    if (focused) {
      [...article.querySelectorAll("button")].find((b) => b.textContent === focused)?.focus();
    }
  }

  // ----- live changes ------------------------------------------------------------------------

  private upsertUpdate(update: Update): void {
    if (this.gone.has(update.id)) return;
    const known = this.updates.get(update.id);
    // The REST answer and the event carry the same change: keep the newest edit.
    if (known && editedAt(known) > editedAt(update)) return;
    this.updates.set(update.id, update);
    if (!this.loaded) return;
    if (this.nodes.has(update.id)) this.redraw(update);
    else {
      this.place(update);
      this.body.querySelector(".empty-comments")?.remove();
    }
  }

  private removeUpdate(id: Uuid): void {
    this.gone.add(id);
    // The focus was on it (its "Yes, delete"): keep it in the panel.
    if (this.nodes.get(id)?.li.contains(document.activeElement)) this.title.focus();
    // Replies go with their comment, and files with the comments they are on.
    const doomed = [id, ...[...this.updates.values()].filter((u) => u.parent_id === id).map((u) => u.id)];
    for (const gone of doomed) {
      this.updates.delete(gone);
      this.editing.delete(gone);
      this.nodes.get(gone)?.li.remove();
      this.nodes.delete(gone);
      for (const attachment of this.attachments.values()) {
        if (attachment.update_id === gone) this.attachments.delete(attachment.id);
      }
    }
  }

  private upsertAttachment(attachment: Attachment): void {
    if (this.gone.has(attachment.id)) return;
    this.attachments.set(attachment.id, attachment);
    if (!this.loaded) return;
    if (attachment.update_id) this.drawCommentFiles(attachment.update_id);
    else this.drawFiles();
  }

  private removeAttachment(id: Uuid): void {
    this.gone.add(id);
    const attachment = this.attachments.get(id);
    this.attachments.delete(id);
    if (!this.loaded || !attachment) return;
    if (this.dialog.querySelector(`[data-attachment="${CSS.escape(id)}"]`)?.contains(document.activeElement)) {
      this.title.focus();
    }
    if (attachment.update_id) this.drawCommentFiles(attachment.update_id);
    else this.drawFiles();
  }

  // ----- files -------------------------------------------------------------------------------

  private sortedFiles(updateId: Uuid | null): Attachment[] {
    return [...this.attachments.values()]
      .filter((a) => a.update_id === updateId)
      .sort(byCreation);
  }

  private drawFiles(): void {
    const files = this.sortedFiles(null);
    this.files.replaceChildren(...files.map((a) => this.file(a)));
    if (files.length === 0) this.files.append(h("li", { class: "empty-files" }, "No files yet."));
  }

  private drawCommentFiles(updateId: Uuid): void {
    const node = this.nodes.get(updateId);
    if (!node) return;
    node.files.replaceChildren(...this.sortedFiles(updateId).map((a) => this.file(a)));
  }

  private file(attachment: Attachment): HTMLLIElement {
    const by = attachment.created_by ? this.people.get(attachment.created_by) : undefined;
    const actions = h("span", { class: "file-actions" });
    if (this.writer() && this.mine(attachment.created_by)) {
      const remove = h("button", { type: "button", class: "secondary", "aria-label": `Delete ${attachment.name}` }, "Delete");
      remove.addEventListener("click", () => {
        this.confirm(actions, `Delete ${attachment.name}?`, async () => {
          await call("DELETE", `/boards/${this.boardId}/attachments/${attachment.id}`);
          this.removeAttachment(attachment.id);
        });
      });
      actions.append(remove);
    }
    return h(
      "li",
      { class: "file", "data-attachment": attachment.id },
      h("a", { href: `/api/v1/boards/${this.boardId}/attachments/${attachment.id}`, download: attachment.name }, attachment.name),
      h("span", { class: "file-meta" }, `${size(attachment.size)} · ${by ?? "a former member"} · `, when(attachment.created_at)),
      actions,
    );
  }

  private uploader(): HTMLFormElement {
    const input = h("input", { type: "file", name: "file", required: true });
    const label = h("label", { class: "field" }, h("span", {}, "File"), input);
    const status = h("p", { class: "upload-status", role: "status" });
    const form = this.form("Attach a file", [label], [h("button", { type: "submit" }, "Upload"), status], async () => {
      const file = input.files?.[0];
      if (!file) throw new ApiError(400, "validation_failed", "Choose a file first.");
      status.textContent = `Uploading ${file.name}…`;
      try {
        const attachment = await this.upload(file);
        this.upsertAttachment(attachment);
        form.reset();
        status.textContent = `Attached ${attachment.name}.`;
      } catch (error) {
        status.textContent = "";
        throw error;
      }
    });
    return form;
  }
}
