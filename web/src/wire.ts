// The wire types this client reads: a hand-kept subset of boardroom-protocol (protocol/src),
// until the typed-contract issue generates them from the OpenAPI document and the frame schema.

export type Uuid = string;

export interface User {
  id: Uuid;
  email: string;
  name: string;
}

export interface SessionAnswer {
  user: User;
}

export type OrgRole = "owner" | "admin" | "member";

export interface Organization {
  id: Uuid;
  name: string;
  role: OrgRole;
}

export interface OrgMember {
  user_id: Uuid;
  email: string;
  name: string;
}

export type BoardRole = "owner" | "editor" | "commenter" | "viewer";

export interface Board {
  id: Uuid;
  organization_id: Uuid;
  name: string;
  description: string;
}

/** A board with the caller's role, flattened: `GET /orgs/{org}/boards` entries and the
 * `POST /orgs/{org}/boards` answer. */
export interface BoardWithRole extends Board {
  role: BoardRole;
}

export type ColumnType =
  | "text"
  | "long_text"
  | "number"
  | "status"
  | "date"
  | "person"
  | "checkbox"
  | "dropdown"
  | "link";

export interface Column {
  id: Uuid;
  title: string;
  type: ColumnType;
  settings: { labels?: string[] };
  position: string;
}

export interface Group {
  id: Uuid;
  title: string;
  color: string | null;
  position: string;
}

export interface Item {
  id: Uuid;
  group_id: Uuid;
  name: string;
  values: Record<Uuid, unknown>;
  position: string;
  version: number;
  archived: boolean;
}

export interface Snapshot {
  board: Board;
  columns: Column[];
  groups: Group[];
  items: Item[];
  seq: number;
}

export interface Subscribed {
  seq: number;
  recovered: boolean;
  snapshot?: Snapshot;
}

export interface EventFrame {
  type: "event";
  board_id: Uuid;
  seq: number;
  kind: string;
  data: unknown;
}

export interface ReplyFrame {
  type: "reply";
  id: number | string | null;
  ok: boolean;
  data?: unknown;
  error?: { code: string; message: string };
}

export type ServerFrame =
  | { type: "hello"; protocol_version: number; heartbeat_secs: number }
  | ReplyFrame
  | EventFrame
  | PresenceFrame
  | { type: "unsubscribed"; board_id: Uuid; error?: { code: string; message: string } };

// ----- item panel and presence (web-items) -----

/** An update: a comment on an item, or a reply to one (`parent_id`). */
export interface Update {
  id: Uuid;
  board_id: Uuid;
  item_id: Uuid;
  parent_id: Uuid | null;
  author_id: Uuid | null;
  /** Present only when the author's account was deleted. */
  author_name?: string;
  body: string;
  created_at: string;
  edited_at: string | null;
}

/** `update.deleted` (its replies go with it). */
export interface UpdateDeleted {
  id: Uuid;
  item_id: Uuid;
  board_id: Uuid;
}

/** A file on an item, or on one of its comments (`update_id`). */
export interface Attachment {
  id: Uuid;
  item_id: Uuid;
  update_id: Uuid | null;
  name: string;
  size: number;
  content_type: string;
  sha256: string;
  created_by: Uuid | null;
  created_at: string;
}

/** `attachment.deleted`. */
export interface AttachmentDeleted {
  id: Uuid;
  item_id: Uuid;
  board_id: Uuid;
}

/** Who is viewing a board: the whole sorted list, and who joined or left. */
export interface PresenceFrame {
  type: "presence";
  board_id: Uuid;
  users: Uuid[];
  joined?: Uuid;
  left?: Uuid;
}
