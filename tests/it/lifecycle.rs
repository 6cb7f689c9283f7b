//! Editing and deleting posts: the HTTP contract (ETag, If-Match, 404 for
//! deleted posts, nothing changed on any error), the frames every
//! transport pushes, resume that covers every change, and writers and
//! resuming readers at once.

use crate::common::sio::SioWs;
use crate::common::sse::next_change;
use crate::common::view::{server_state, View};
use crate::common::{within, TestServer, Ws};
use serde_json::{json, Value};

async fn patch(
    server: &TestServer,
    id: u64,
    body: &str,
    if_match: Option<&str>,
) -> crate::common::Response {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(tag) = if_match {
        headers.push(("If-Match", tag));
    }
    server
        .request("PATCH", &format!("/posts/{id}"), &headers, body.as_bytes())
        .await
}

async fn delete(server: &TestServer, id: u64, if_match: Option<&str>) -> crate::common::Response {
    let headers: Vec<(&str, &str)> = if_match.map(|t| ("If-Match", t)).into_iter().collect();
    server
        .request("DELETE", &format!("/posts/{id}"), &headers, b"")
        .await
}

#[async_std::test]
async fn edits_and_deletes_over_http() {
    let server = TestServer::start().await;
    let created = server
        .post_json(r#"{"title":"Hi","content":"there","author":"ana"}"#)
        .await;
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.json()["updatedAt"], Value::Null);

    let edited = patch(&server, 1, r#"{"title":"  Hello ","author":null}"#, None).await;
    assert_eq!(edited.status, 200, "{}", edited.text());
    assert_eq!(edited.header("etag"), Some("\"2\""));
    let post = edited.json();
    assert_eq!(
        (post["title"].as_str(), post["content"].as_str()),
        (Some("Hello"), Some("there"))
    );
    assert_eq!(post["author"], Value::Null, "null author means anonymous");
    assert_eq!(post["createdAt"], created.json()["createdAt"]);
    let updated_at = post["updatedAt"].as_str().expect("updatedAt is set");
    assert!(
        updated_at.ends_with('Z') && updated_at.len() == 24,
        "{updated_at}"
    );
    let got = server.get("/posts/1").await;
    assert_eq!(
        (got.json(), got.header("etag")),
        (post.clone(), Some("\"2\""))
    );

    // If-Match: a stale tag is refused and changes nothing; `*` and the
    // current tag (in a list) match.
    let stale = patch(&server, 1, r#"{"title":"x"}"#, Some("\"1\"")).await;
    assert_eq!(
        (stale.status, stale.error_code().as_str()),
        (412, "precondition_failed")
    );
    let weak = patch(&server, 1, r#"{"title":"x"}"#, Some("W/\"2\"")).await;
    assert_eq!(weak.status, 412, "a weak tag never matches");
    assert_eq!(server.get("/posts/1").await.json(), post);
    let star = patch(&server, 1, r#"{"content":"again"}"#, Some("*")).await;
    assert_eq!((star.status, star.header("etag")), (200, Some("\"3\"")));
    let listed = patch(&server, 1, r#"{"content":"more"}"#, Some("\"9\", \"3\"")).await;
    assert_eq!((listed.status, listed.header("etag")), (200, Some("\"4\"")));

    // Delete: 204 and an empty body, then 404 on every route.
    server
        .post_json(r#"{"title":"second","content":"c"}"#)
        .await;
    let refused = delete(&server, 1, Some("\"3\"")).await;
    assert_eq!(refused.status, 412);
    let gone = delete(&server, 1, Some("\"4\"")).await;
    assert_eq!((gone.status, gone.body.len()), (204, 0));
    for response in [
        server.get("/posts/1").await,
        patch(&server, 1, r#"{"title":"x"}"#, Some("*")).await,
        delete(&server, 1, None).await,
        delete(&server, 1, Some("*")).await,
    ] {
        assert_eq!(
            (response.status, response.error_code().as_str()),
            (404, "not_found")
        );
    }
    let listed = server.get("/posts").await.json();
    let ids: Vec<_> = listed["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(5)], "the deleted post is left out");
    assert_eq!(server.metric("livefeed_posts_updated_total").await, 3);
    assert_eq!(server.metric("livefeed_posts_deleted_total").await, 1);
    assert_eq!(server.metric("livefeed_last_seq").await, 6);
}

#[async_std::test]
async fn refused_edits_change_and_broadcast_nothing() {
    let server = TestServer::start_with(|c| c.publish_token = Some("s3cret".into())).await;
    let auth = [
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer s3cret"),
    ];
    let created = server
        .request("POST", "/posts", &auth, br#"{"title":"t","content":"c"}"#)
        .await;
    let before = created.json();
    let mut ws = server.ws("").await;
    ws.welcome().await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [u8], u16, &'a str);
    let cases: [Case<'_>; 9] = [
        ("PATCH", &auth, br#"{}"#, 422, "invalid_field"),
        ("PATCH", &auth, br#"{"title":""}"#, 422, "invalid_field"),
        ("PATCH", &auth, br#"{"title":5}"#, 422, "invalid_field"),
        ("PATCH", &auth, br#"{"id":2}"#, 422, "invalid_field"),
        ("PATCH", &auth, b"{", 400, "malformed_json"),
        (
            "PATCH",
            &[
                ("Content-Type", "text/plain"),
                ("Authorization", "Bearer s3cret"),
            ],
            b"x",
            415,
            "unsupported_media_type",
        ),
        (
            "PATCH",
            &[("Content-Type", "application/json")],
            br#"{"title":"x"}"#,
            401,
            "unauthorized",
        ),
        ("DELETE", &[], b"", 401, "unauthorized"),
        (
            "DELETE",
            &[("Authorization", "Bearer wrong")],
            b"",
            401,
            "unauthorized",
        ),
    ];
    for (method, headers, body, status, code) in cases {
        let res = server.request(method, "/posts/1", headers, body).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (status, code),
            "{method} {}",
            String::from_utf8_lossy(body)
        );
    }
    let field = server
        .request("PATCH", "/posts/1", &auth, br#"{"content":[]}"#)
        .await;
    assert_eq!(field.json()["error"]["field"], "content");
    let empty = server.request("PATCH", "/posts/1", &auth, b"{}").await;
    assert_eq!(
        empty.json()["error"].get("field"),
        None,
        "no field is at fault"
    );
    let bad_id = server.request("DELETE", "/posts/abc", &auth, b"").await;
    assert_eq!(bad_id.error_code(), "invalid_id");
    assert_eq!(server.get("/posts/1").await.json(), before);
    // With the token both work; the first frame the client sees is the edit.
    let ok = server
        .request("PATCH", "/posts/1", &auth, br#"{"title":"T"}"#)
        .await;
    assert_eq!(ok.status, 200);
    let change = ws.change().await;
    assert_eq!((change.event.as_str(), change.seq()), ("postUpdated", 2));
    let gone = server.request("DELETE", "/posts/1", &auth, b"").await;
    assert_eq!(gone.status, 204);
}

/// One order for every change, on every transport, with the frames exactly
/// as documented.
#[async_std::test]
async fn every_transport_gets_every_change_in_one_order() {
    let server = TestServer::start().await;
    let mut ws = server.ws("").await;
    let welcome = ws.welcome_data().await;
    assert_eq!(
        (welcome["lastPostId"].clone(), welcome["lastSeq"].clone()),
        (Value::Null, Value::Null)
    );
    let mut sse = within(server.api().events(None)).await.unwrap();
    let (mut sio, _) = SioWs::connect(server.addr, "").await;

    let created = server.create("first", "c").await;
    assert_eq!(
        patch(&server, 1, r#"{"title":"First!"}"#, None)
            .await
            .status,
        200
    );
    assert_eq!(delete(&server, 1, None).await.status, 204);
    server.create("second", "c").await;

    let expected = [
        ("newPost", 1, 1),
        ("postUpdated", 2, 1),
        ("postDeleted", 3, 1),
        ("newPost", 4, 4),
    ];
    for (event, seq, id) in expected {
        for change in [ws.change().await, next_change(&mut sse).await] {
            assert_eq!(
                (change.event.as_str(), change.seq(), change.post_id()),
                (event, seq, id)
            );
        }
        let packet = sio.packet().await;
        let (name, data, offset) = sio_event(&packet);
        assert_eq!(
            (name.as_str(), data["seq"].as_u64(), offset),
            (event, Some(seq), Some(seq.to_string()))
        );
    }
    // The shapes: a post's data carries the whole post, a delete its id.
    let mut ws2 = server.ws("?since=0").await;
    let welcome = ws2.welcome_data().await;
    assert_eq!(
        (welcome["lastPostId"].as_u64(), welcome["lastSeq"].as_u64()),
        (Some(4), Some(4))
    );
    let replayed = ws2.change().await;
    assert_eq!(replayed.data.as_object().unwrap().len(), 2, "{replayed:?}");
    assert_eq!(replayed.data["post"]["title"], "second");
    assert_eq!(created["id"], 1);
}

/// `42["<event>",<data>,"<offset>"]`.
fn sio_event(packet: &str) -> (String, Value, Option<String>) {
    let array: Value =
        serde_json::from_str(packet.strip_prefix("42").expect("an event packet")).unwrap();
    (
        array[0].as_str().unwrap().to_owned(),
        array[1].clone(),
        array.get(2).and_then(Value::as_str).map(str::to_owned),
    )
}

/// A client resuming after seq N gets each post changed since once, in
/// its latest state, at its latest change: new if it was created after N,
/// updated otherwise; deletes of posts it had, not of ones it never saw.
#[async_std::test]
async fn resume_replays_every_change_compacted() {
    let server = TestServer::start().await;
    for title in ["a", "b", "c"] {
        server.create(title, "c").await; // posts 1, 2, 3
    }
    patch(&server, 1, r#"{"title":"a1"}"#, None).await; // 4
    patch(&server, 1, r#"{"title":"a2"}"#, None).await; // 5
    delete(&server, 2, None).await; // 6
    server.create("d", "c").await; // 7: post 7
    patch(&server, 7, r#"{"title":"d1"}"#, None).await; // 8
    server.create("e", "c").await; // 9: post 9
    delete(&server, 9, None).await; // 10

    let server = &server;
    let replay = |since: u64| async move {
        let mut ws = server.ws(&format!("?since={since}")).await;
        // (10, or 11 once the first replay's marker is there.)
        assert!(ws.welcome_data().await["lastSeq"].as_u64() >= Some(10));
        let mut got = Vec::new();
        // A marker post ends the replay.
        let marker = server.create("marker", "c").await["id"].as_u64().unwrap();
        loop {
            let change = ws.change().await;
            if change.post_id() == marker {
                break;
            }
            let (seq, id) = (change.seq(), change.post_id());
            got.push((change.event, seq, id));
        }
        got
    };
    let s = |e: &str, seq, id| (e.to_owned(), seq, id);
    assert_eq!(
        replay(3).await,
        vec![
            s("postUpdated", 5, 1),
            s("postDeleted", 6, 2),
            s("newPost", 8, 7)
        ]
    );
    assert_eq!(
        replay(0).await,
        vec![
            s("newPost", 3, 3),
            s("newPost", 5, 1),
            s("newPost", 8, 7),
            s("newPost", 11, 11)
        ]
    );
    // The same over SSE, resuming with Last-Event-ID.
    let mut sse = within(server.api().events(Some(5))).await.unwrap();
    let mut view = View {
        seq: 5,
        ..View::default()
    };
    let last = server.metric("livefeed_last_seq").await;
    while view.seq < last {
        view.apply(&next_change(&mut sse).await);
    }
    assert!(view.posts.contains_key(&7) && !view.posts.contains_key(&9));
}

/// Several writers create, edit and delete at once while clients join,
/// leave and resume with `since` at random moments; every client ends with
/// exactly the server's state, having seen seqs strictly ascending.
#[async_std::test]
async fn concurrent_writers_and_resuming_readers_agree() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            async_std::task::spawn(async move {
                let mut mine: Vec<u64> = Vec::new();
                for step in 0..60u64 {
                    let roll = (w * 7 + step * 13) % 10;
                    let target = mine
                        .get((step as usize * 5 + w as usize) % mine.len().max(1))
                        .copied();
                    match (roll, target) {
                        (0..=3, _) | (_, None) => {
                            let body = format!(r#"{{"title":"w{w} {step}","content":"c"}}"#);
                            let res = crate::common::post_json(addr, &body).await;
                            assert_eq!(res.status, 201, "{}", res.text());
                            mine.push(res.json()["id"].as_u64().unwrap());
                        }
                        (4..=7, Some(id)) => {
                            let body = format!(r#"{{"content":"edit {step} by {w}"}}"#);
                            let headers = [("Content-Type", "application/json")];
                            let res = crate::common::request(
                                addr,
                                "PATCH",
                                &format!("/posts/{id}"),
                                &headers,
                                body.as_bytes(),
                            )
                            .await;
                            assert_eq!(res.status, 200, "{}", res.text());
                        }
                        (_, Some(id)) => {
                            let res = crate::common::request(
                                addr,
                                "DELETE",
                                &format!("/posts/{id}"),
                                &[],
                                b"",
                            )
                            .await;
                            assert_eq!(res.status, 204, "{}", res.text());
                            mine.retain(|&m| m != id);
                        }
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..6u64)
        .map(|r| {
            async_std::task::spawn(async move {
                let mut view = View::default();
                // Each reader reconnects a few times, resuming after the
                // last seq it applied (odd readers over SSE), then reads on
                // until the post titled "end", created once the writers are
                // done.
                for round in 0..4u64 {
                    let frames = if round == 3 {
                        usize::MAX
                    } else {
                        (5 + (r * 3 + round * 7) % 20) as usize
                    };
                    let mut ws = None;
                    let mut sse = None;
                    if r % 2 == 0 {
                        let mut client = Ws::connect(addr, &format!("?since={}", view.seq)).await;
                        client.welcome_data().await;
                        ws = Some(client);
                    } else {
                        let api = crate::common::Api::at(addr);
                        sse = Some(within(api.events(Some(view.seq))).await.unwrap());
                    }
                    for _ in 0..frames {
                        let change = match (&mut ws, &mut sse) {
                            (Some(ws), _) => ws.change().await,
                            (_, Some(sse)) => next_change(sse).await,
                            _ => unreachable!(),
                        };
                        view.apply(&change);
                        if change.data["post"]["title"] == "end" {
                            return view;
                        }
                    }
                }
                unreachable!("the last round reads until the end post")
            })
        })
        .collect();
    for writer in writers {
        within(writer).await;
    }
    crate::common::post_json(addr, r#"{"title":"end","content":"c"}"#).await;
    let truth = server_state(addr).await;
    for reader in readers {
        let view = within(reader).await;
        assert_eq!(
            view.posts, truth,
            "a reader's view differs from the server's state"
        );
    }
}

/// `updatePost` and `deletePost` over Socket.IO, acked like the HTTP
/// answers, errors included.
#[async_std::test]
async fn socketio_edits_and_deletes_are_acked() {
    let server = TestServer::start().await;
    server.create("t", "c").await;
    let (mut sio, _) = SioWs::connect(server.addr, "").await;
    let ack = |packet: String, id: u64| -> Value {
        let body = packet
            .strip_prefix(&format!("43{id}"))
            .unwrap_or_else(|| panic!("ack {id}: {packet}"));
        serde_json::from_str::<Value>(body).unwrap()[0].clone()
    };
    let cases: [(&str, Value); 6] = [
        (r#"1["updatePost",{"id":1,"title":"T"}]"#, json!("post")),
        (
            r#"2["updatePost",{"id":1,"nope":1}]"#,
            json!("invalid_field"),
        ),
        (r#"3["updatePost",{"title":"T"}]"#, json!("invalid_id")),
        (r#"4["deletePost",{"id":1}]"#, json!("id")),
        (r#"5["deletePost",{"id":1}]"#, json!("not_found")),
        (
            r#"6["updatePost",{"id":1,"title":"T"}]"#,
            json!("not_found"),
        ),
    ];
    for (i, (packet, want)) in cases.into_iter().enumerate() {
        sio.send(&format!("42{packet}")).await;
        // The broadcast of a successful change may come before its ack.
        let mut reply = sio.packet().await;
        while reply.starts_with("42[") {
            reply = sio.packet().await;
        }
        let got = ack(reply, i as u64 + 1);
        match want.as_str().unwrap() {
            "post" => assert_eq!(got["post"]["title"], "T", "{got}"),
            "id" => assert_eq!(got, json!({"id": 1})),
            code => assert_eq!(got["error"]["code"], code, "{got}"),
        }
    }
    assert_eq!(server.get("/posts/1").await.status, 404);
}
