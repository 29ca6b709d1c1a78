//! The authorization matrix: every board endpoint, walked by every kind of caller, with the
//! exact answer each must get. Callers: the board's owner, an editor, a viewer, an org member
//! who is not on the board, another organization's admin, and an API key (of the owner) that
//! lacks exactly the scope the endpoint needs.

use boardroom_protocol::boards::{
    ArchiveItem, CreateUpdate, EditUpdate, MoveItem, SetMember, Update, UpdateBoard, UpdateColumn,
    UpdateGroup, UpdateItem,
};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::boards::{fixture, Fixture};
use crate::harness::{both_backends, column, group, id, item, TestServer, TestUser};

both_backends!(every_endpoint_checks_every_caller);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Owner,
    Editor,
    Viewer,
    OrgMemberNotOnBoard,
    OtherOrgAdmin,
    KeyWithoutScope,
}

const CALLERS: [Who; 6] = [
    Who::Owner,
    Who::Editor,
    Who::Viewer,
    Who::OrgMemberNotOnBoard,
    Who::OtherOrgAdmin,
    Who::KeyWithoutScope,
];

/// Ids made fresh for each attempt, so a successful attempt never disturbs the next.
struct Targets {
    column: String,
    group: String,
    item: String,
    update: String,
    member: String,
}

struct World {
    f: Fixture,
    editor: TestUser,
    viewer: TestUser,
    outsider: TestUser,
    stranger: TestUser,
    keys: std::collections::HashMap<&'static str, String>,
}

async fn fresh(server: &TestServer, w: &World) -> Targets {
    let b = format!("/api/v1/boards/{}", w.f.board);
    let token = &w.f.owner.access_token;
    let owner = &w.f.owner;
    let column = server.create_column(owner, &w.f.board, &column("c", "text")).await.id;
    let group = server.create_group(owner, &w.f.board, &group("g")).await.id;
    let item = server.create_item(owner, &w.f.board, &item(&group.to_string(), "i")).await.id;
    let update: Update = server
        .post(&format!("{b}/items/{item}/updates"), Some(token), &comment("u"))
        .await
        .expect_as(201);
    // A disposable org member to add to / remove from the board.
    let extra = server.register("extra").await;
    server.add_member(owner, &w.f.org, &extra, "member").await;
    server.add_board_member(owner, &w.f.board, &extra, "viewer").await;
    Targets {
        column: column.to_string(),
        group: group.to_string(),
        item: item.to_string(),
        update: update.id.to_string(),
        member: extra.id,
    }
}

/// A protocol body as the JSON the table's calls send.
fn body(body: impl Serialize) -> Option<Value> {
    Some(serde_json::to_value(body).unwrap())
}

/// The body of a comment.
fn comment(text: &str) -> CreateUpdate {
    CreateUpdate { body: text.to_owned(), parent_id: None }
}

struct Case {
    name: &'static str,
    method: Method,
    path: fn(&str, &Targets) -> String,
    body: fn(&Targets) -> Option<Value>,
    scope: &'static str,
    /// Lowest role that may: "viewer", "editor", "owner", or "author" (the update's author).
    need: &'static str,
    success: u16,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "snapshot",
            method: Method::GET,
            path: |b, _| b.to_owned(),
            body: |_| None,
            scope: "boards:read",
            need: "viewer",
            success: 200,
        },
        Case {
            name: "update board",
            method: Method::PATCH,
            path: |b, _| b.to_owned(),
            body: |_| body(UpdateBoard { description: Some("d".into()), ..UpdateBoard::default() }),
            scope: "boards:write",
            need: "owner",
            success: 200,
        },
        Case {
            name: "list members",
            method: Method::GET,
            path: |b, _| format!("{b}/members"),
            body: |_| None,
            scope: "boards:read",
            need: "viewer",
            success: 200,
        },
        Case {
            name: "set member",
            method: Method::PUT,
            path: |b, t| format!("{b}/members/{}", t.member),
            body: |_| body(SetMember { role: "editor".into() }),
            scope: "boards:write",
            need: "owner",
            success: 200,
        },
        Case {
            name: "remove member",
            method: Method::DELETE,
            path: |b, t| format!("{b}/members/{}", t.member),
            body: |_| None,
            scope: "boards:write",
            need: "owner",
            success: 204,
        },
        Case {
            name: "create column",
            method: Method::POST,
            path: |b, _| format!("{b}/columns"),
            body: |_| body(column("n", "number")),
            scope: "boards:write",
            need: "owner",
            success: 201,
        },
        Case {
            name: "update column",
            method: Method::PATCH,
            path: |b, t| format!("{b}/columns/{}", t.column),
            body: |_| body(UpdateColumn { title: Some("t2".into()), ..UpdateColumn::default() }),
            scope: "boards:write",
            need: "owner",
            success: 200,
        },
        Case {
            name: "delete column",
            method: Method::DELETE,
            path: |b, t| format!("{b}/columns/{}", t.column),
            body: |_| None,
            scope: "boards:write",
            need: "owner",
            success: 204,
        },
        Case {
            name: "create group",
            method: Method::POST,
            path: |b, _| format!("{b}/groups"),
            body: |_| body(group("g2")),
            scope: "boards:write",
            need: "editor",
            success: 201,
        },
        Case {
            name: "update group",
            method: Method::PATCH,
            path: |b, t| format!("{b}/groups/{}", t.group),
            body: |_| body(UpdateGroup { title: Some("g3".into()), ..UpdateGroup::default() }),
            scope: "boards:write",
            need: "editor",
            success: 200,
        },
        Case {
            name: "delete group",
            method: Method::DELETE,
            path: |b, t| format!("{b}/groups/{}", t.group),
            body: |_| None,
            scope: "boards:write",
            need: "editor",
            success: 204,
        },
        Case {
            name: "create item",
            method: Method::POST,
            path: |b, _| format!("{b}/items"),
            body: |t| body(item(&t.group, "new")),
            scope: "items:write",
            need: "editor",
            success: 201,
        },
        Case {
            name: "list items",
            method: Method::GET,
            path: |b, _| format!("{b}/items"),
            body: |_| None,
            scope: "items:read",
            need: "viewer",
            success: 200,
        },
        Case {
            name: "get item",
            method: Method::GET,
            path: |b, t| format!("{b}/items/{}", t.item),
            body: |_| None,
            scope: "items:read",
            need: "viewer",
            success: 200,
        },
        Case {
            name: "update item",
            method: Method::PATCH,
            path: |b, t| format!("{b}/items/{}", t.item),
            body: |_| body(UpdateItem { name: Some("renamed".into()), ..UpdateItem::default() }),
            scope: "items:write",
            need: "editor",
            success: 200,
        },
        Case {
            name: "move item",
            method: Method::POST,
            path: |b, t| format!("{b}/items/{}/move", t.item),
            body: |t| body(MoveItem { group_id: id(&t.group), before: None, after: None }),
            scope: "items:write",
            need: "editor",
            success: 200,
        },
        Case {
            name: "archive item",
            method: Method::POST,
            path: |b, t| format!("{b}/items/{}/archive", t.item),
            body: |_| body(ArchiveItem::default()),
            scope: "items:write",
            need: "editor",
            success: 200,
        },
        Case {
            name: "delete item",
            method: Method::DELETE,
            path: |b, t| format!("{b}/items/{}", t.item),
            body: |_| None,
            scope: "items:write",
            need: "editor",
            success: 204,
        },
        Case {
            name: "create update",
            method: Method::POST,
            path: |b, t| format!("{b}/items/{}/updates", t.item),
            body: |_| body(comment("hi")),
            scope: "updates:write",
            need: "editor",
            success: 201,
        },
        Case {
            name: "list updates",
            method: Method::GET,
            path: |b, t| format!("{b}/items/{}/updates", t.item),
            body: |_| None,
            scope: "updates:read",
            need: "viewer",
            success: 200,
        },
        Case {
            name: "edit update",
            method: Method::PATCH,
            path: |b, t| format!("{b}/items/{}/updates/{}", t.item, t.update),
            body: |_| body(EditUpdate { body: "edited".into() }),
            scope: "updates:write",
            need: "author",
            success: 200,
        },
        Case {
            name: "delete update",
            method: Method::DELETE,
            path: |b, t| format!("{b}/items/{}/updates/{}", t.item, t.update),
            body: |_| None,
            scope: "updates:write",
            need: "owner",
            success: 204,
        },
        Case {
            name: "events",
            method: Method::GET,
            path: |b, _| format!("{b}/events"),
            body: |_| None,
            scope: "boards:read",
            need: "viewer",
            success: 200,
        },
        Case {
            name: "delete board",
            method: Method::DELETE,
            path: |b, _| b.to_owned(),
            body: |_| None,
            scope: "boards:write",
            need: "owner",
            success: 204,
        },
    ]
}

fn rank(role: &str) -> u8 {
    match role {
        "viewer" => 1,
        "editor" => 2,
        _ => 3,
    }
}

/// The answer `who` must get for `case`.
fn expected(case: &Case, who: Who) -> (u16, &'static str) {
    let role = match who {
        Who::Owner | Who::KeyWithoutScope => "owner",
        Who::Editor => "editor",
        Who::Viewer => "viewer",
        Who::OrgMemberNotOnBoard | Who::OtherOrgAdmin => return (404, "not_found"),
    };
    if who == Who::KeyWithoutScope {
        return (403, "insufficient_scope");
    }
    let allowed = match case.need {
        // Updates are written by the owner in `fresh`; only their author edits them.
        "author" => who == Who::Owner,
        need => rank(role) >= rank(need),
    };
    if allowed {
        (case.success, "")
    } else {
        (403, "forbidden")
    }
}

async fn every_endpoint_checks_every_caller(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let editor = server.register("editor").await;
    let viewer = server.register("viewer").await;
    let outsider = server.register("outsider").await;
    let stranger = server.register("stranger").await;
    server.create_org(&stranger, "Elsewhere").await;
    for (user, role) in [(&editor, "editor"), (&viewer, "viewer")] {
        server.add_member(&f.owner, &f.org, user, "member").await;
        server.add_board_member(&f.owner, &f.board, user, role).await;
    }
    server.add_member(&f.owner, &f.org, &outsider, "member").await;
    let all = [
        "boards:read",
        "boards:write",
        "items:read",
        "items:write",
        "updates:read",
        "updates:write",
    ];
    let mut keys = std::collections::HashMap::new();
    for missing in all {
        let scopes: Vec<&str> = all.iter().copied().filter(|s| *s != missing).collect();
        let (_, key) = server.create_key(&f.owner, &f.org, &scopes).await;
        keys.insert(missing, key);
    }
    let world = World { f, editor, viewer, outsider, stranger, keys };

    let mut checked = 0;
    for case in cases() {
        for who in CALLERS {
            // Deleting the board is checked last, by the owner last of all.
            let targets = fresh(server, &world).await;
            let token = match who {
                Who::Owner => world.f.owner.access_token.clone(),
                Who::Editor => world.editor.access_token.clone(),
                Who::Viewer => world.viewer.access_token.clone(),
                Who::OrgMemberNotOnBoard => world.outsider.access_token.clone(),
                Who::OtherOrgAdmin => world.stranger.access_token.clone(),
                Who::KeyWithoutScope => world.keys[case.scope].clone(),
            };
            if case.name == "delete board" && who == Who::Owner {
                continue;
            }
            let path = (case.path)(&b, &targets);
            let reply = server
                .send_as(case.method.clone(), &path, &token, (case.body)(&targets).as_ref())
                .await;
            let (status, code) = expected(&case, who);
            assert_eq!(
                (reply.status, if code.is_empty() { "" } else { reply.error_code() }),
                (status, code),
                "{} as {who:?}: {}",
                case.name,
                reply.body
            );
            checked += 1;
        }
    }
    // Finally the owner deletes the board; now everyone, owner included, gets 404.
    server.send_as(Method::DELETE, &b, &world.f.owner.access_token, None).await.expect(204);
    for token in
        [&world.f.owner.access_token, &world.editor.access_token, &world.viewer.access_token]
    {
        server.get_as(&b, token).await.expect_error(404, "not_found");
    }
    assert_eq!(checked, cases().len() * CALLERS.len() - 1);
}
