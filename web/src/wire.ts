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

/** `GET /boards/{board}/members` entries. */
export interface BoardMember {
  user_id: Uuid;
  role: BoardRole;
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
  /** On replies to board writes: the `seq` of the event the change committed as. */
  seq?: number;
}

export type ServerFrame =
  | { type: "hello"; protocol_version: number; heartbeat_secs: number }
  | ReplyFrame
  | EventFrame
  | { type: "presence"; board_id: Uuid; users?: Uuid[] }
  | { type: "unsubscribed"; board_id: Uuid; error?: { code: string; message: string } };
