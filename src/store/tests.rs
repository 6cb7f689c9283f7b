use super::*;
use std::time::Duration;

fn new_post(title: &str) -> NewPost {
    NewPost {
        feed: FeedName::main(),
        title: title.into(),
        content: "c".into(),
        author: None,
    }
}

impl Store {
    /// A create without an idempotency key: its post.
    async fn create_post(&self, post: NewPost) -> Result<Stored, PublishError> {
        Ok(self.create(post, None).await?.stored)
    }
}

fn titled(title: &str) -> Patch {
    Patch {
        title: Some(title.into()),
        ..Patch::default()
    }
}

#[async_std::test]
async fn ids_increase_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let a = store.create_post(new_post("a")).await.unwrap();
        let b = store.create_post(new_post("b")).await.unwrap();
        assert_eq!((a.post.id, b.post.id), (1, 2));
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head().unwrap().post_id, Some(2));
    assert_eq!(store.create_post(new_post("c")).await.unwrap().post.id, 3);
    let page = Store::page(&store, DEFAULT_FEED, None, 2).unwrap();
    assert_eq!(page.posts.len(), 2);
    assert_eq!(page.next, Some(2));
    let older = Store::page(&store, DEFAULT_FEED, page.next, 2).unwrap();
    assert_eq!(older.posts.len(), 1);
    assert_eq!(older.next, None);
    store.close().unwrap();
}

#[async_std::test]
async fn second_open_of_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked(_)), "{err:?}");
}

#[async_std::test]
async fn concurrent_creates_get_distinct_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            async_std::task::spawn(async move {
                store
                    .create_post(new_post(&i.to_string()))
                    .await
                    .unwrap()
                    .post
                    .id
            })
        })
        .collect();
    let mut ids = futures::future::join_all(tasks).await;
    ids.sort_unstable();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
    store.close().unwrap();
}

#[async_std::test]
async fn applied_changes_keep_their_seqs_and_creates_follow_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let stored: Vec<Stored> = [3u64, 7]
        .iter()
        .map(|&id| Stored::new(new_post(&format!("t{id}")).into_post(id, "x".into()), id))
        .collect();
    let changes = stored.iter().cloned().map(Logged::Created).collect();
    store.apply(changes).await.unwrap();
    assert_eq!(store.head().unwrap().seq, Some(7));
    assert_eq!(
        store.post(3).unwrap().unwrap().json,
        stored[0].json.as_bytes()
    );
    assert_eq!(
        store.create_post(new_post("next")).await.unwrap().post.id,
        8
    );
    store.close().unwrap();
}

#[async_std::test]
async fn edits_and_deletes_take_seqs_and_check_the_current_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store.create_post(new_post("a")).await.unwrap();
    let b = store.create_post(new_post("b")).await.unwrap();
    let edited = store
        .update(a.post.id, titled("A"), Expect::Live)
        .await
        .unwrap();
    assert_eq!((edited.seq, edited.post.title.as_str()), (3, "A"));
    assert!(edited.post.updated_at.is_some());
    // An If-Match on the old seq is refused, and changes nothing.
    let stale = store
        .update(a.post.id, titled("x"), Expect::Seqs(vec![1]))
        .await;
    assert!(matches!(
        stale,
        Err(PublishError::Precondition { current: 3 })
    ));
    assert_eq!(
        store
            .delete(b.post.id, Expect::Seqs(vec![2]))
            .await
            .unwrap(),
        4
    );
    assert!(matches!(
        store.delete(b.post.id, Expect::Live).await,
        Err(PublishError::NotFound)
    ));
    assert!(matches!(
        store.update(b.post.id, titled("x"), Expect::Live).await,
        Err(PublishError::NotFound)
    ));
    assert!(store.post(b.post.id).unwrap().is_none());
    assert_eq!(
        Store::page(&store, DEFAULT_FEED, None, 10)
            .unwrap()
            .posts
            .len(),
        1
    );
    assert_eq!(
        store.head().unwrap(),
        Head {
            seq: Some(4),
            post_id: Some(2)
        }
    );
    // Replay from 0: post 1 once, as new, at its edit; post 2 (created
    // and deleted since) left out. From 2: post 1 edited, 2 deleted.
    let span = |since| Span {
        since,
        from: since,
        upto: 4,
        limit: 100,
    };
    let kinds = |since| {
        store
            .replay(span(since), None)
            .unwrap()
            .iter()
            .map(|d| (d.seq, d.kind))
            .collect::<Vec<_>>()
    };
    use livefeed_actors::Kind;
    assert_eq!(kinds(0), vec![(3, Kind::Created)]);
    assert_eq!(kinds(2), vec![(3, Kind::Updated), (4, Kind::Deleted)]);
    store.close().unwrap();
    drop(store);
    // All of it survives a restart.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head().unwrap().seq, Some(4));
    assert_eq!(store.create_post(new_post("c")).await.unwrap().post.id, 5);
    store.close().unwrap();
}

#[async_std::test]
async fn one_round_checks_its_requests_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store.create_post(new_post("a")).await.unwrap();
    // Queued together: the edit sees the create's seq, the delete the
    // edit's, the second delete finds nothing.
    let (e, d1, d2) = futures::join!(
        store.update(a.post.id, titled("A"), Expect::Seqs(vec![1])),
        store.delete(a.post.id, Expect::Seqs(vec![2])),
        store.delete(a.post.id, Expect::Live),
    );
    assert_eq!(e.unwrap().seq, 2);
    assert_eq!(d1.unwrap(), 3);
    assert!(matches!(d2, Err(PublishError::NotFound)));
    store.close().unwrap();
}

#[async_std::test]
async fn feeds_keep_their_own_pages_counts_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let in_feed = |feed: &str, title: &str| NewPost {
        feed: FeedName::parse(feed).unwrap(),
        ..new_post(title)
    };
    for (feed, title) in [
        ("a", "a1"),
        ("b", "b1"),
        ("a", "a2"),
        ("c", "c1"),
        ("b", "b2"),
    ] {
        store.create_post(in_feed(feed, title)).await.unwrap();
    }
    store.update(2, titled("B1"), Expect::Live).await.unwrap(); // 6
    store.delete(1, Expect::Live).await.unwrap(); // 7
    let titles = |feed: &str| -> Vec<String> {
        let page = Store::page(&store, feed, None, 10).unwrap();
        page.posts
            .iter()
            .map(|json| serde_json::from_slice::<Post>(json).unwrap().title)
            .collect()
    };
    assert_eq!(titles("a"), vec!["a2"]);
    assert_eq!(titles("b"), vec!["b2", "B1"]);
    assert!(titles("nothing").is_empty());
    let stats = store.feeds().unwrap();
    let counts: Vec<_> = stats
        .iter()
        .map(|f| (f.name.as_str(), f.posts, f.last_post_id))
        .collect();
    assert_eq!(
        counts,
        vec![("a", 1, Some(3)), ("b", 2, Some(5)), ("c", 1, Some(4))]
    );
    // Replay of feeds a and b from 0: merged in seq order, compacted,
    // nothing of c.
    let span = Span {
        since: 0,
        from: 0,
        upto: 7,
        limit: 100,
    };
    let feeds: Vec<Arc<str>> = vec!["a".into(), "b".into()];
    let got: Vec<_> = store
        .replay(span, Some(&feeds))
        .unwrap()
        .iter()
        .map(|d| (d.seq, d.post_id, d.feed.to_string()))
        .collect();
    assert_eq!(
        got,
        vec![(3, 3, "a".into()), (5, 5, "b".into()), (6, 2, "b".into())]
    );
    // From 2 the delete of post 1 (feed a) is replayed to a's readers.
    let span = Span {
        since: 2,
        from: 2,
        upto: 7,
        limit: 100,
    };
    let a: Vec<Arc<str>> = vec!["a".into()];
    let got: Vec<_> = store
        .replay(span, Some(&a))
        .unwrap()
        .iter()
        .map(|d| (d.seq, d.kind))
        .collect();
    use livefeed_actors::Kind;
    assert_eq!(got, vec![(3, Kind::Created), (7, Kind::Deleted)]);
    store.close().unwrap();
}

fn once(key: &str, body: &str, ttl: Duration) -> Idempotency {
    use crate::feed::idempotency::{Key, Keyed};
    let keyed = Keyed {
        key: Key::parse(key).unwrap(),
        route: "/posts".into(),
    };
    let body = serde_json::from_str(body).unwrap();
    Idempotency::new(&crate::feed::access::Grant::Anonymous, &keyed, &body, ttl)
}

/// The idempotency records in the tree: `K` and `E` entries.
fn key_entries(store: &Store) -> (usize, usize) {
    let count = |prefix| {
        let count = |h: &shared::Handles| Ok(h.tree.scan_prefix([prefix]).count());
        store.shared.read(count).unwrap()
    };
    (count(keys::IDEMPOTENCY), count(keys::KEY_EXPIRY))
}

#[async_std::test]
async fn a_keyed_create_is_stored_once_and_its_answer_kept() {
    let dir = tempfile::tempdir().unwrap();
    let day = Duration::from_secs(86_400);
    let first = once("k", r#"{"title":"a","content":"c"}"#, day);
    let other = once("k", r#"{"title":"b","content":"c"}"#, day);
    {
        let store = Store::open(dir.path()).unwrap();
        // Three at once with one key (one round, or rounds in a row):
        // one post, the others its replays; another body is refused.
        let (a, b, c) = futures::join!(
            store.create(new_post("a"), Some(&first)),
            store.create(new_post("a"), Some(&first)),
            store.create(new_post("b"), Some(&other)),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.stored, b.stored);
        assert_eq!([a.replayed, b.replayed], [false, true]);
        assert!(matches!(c, Err(PublishError::KeyReused)), "{c:?}");
        assert_eq!(store.head().unwrap().seq, Some(1));
        // An edit does not change what a replay answers.
        store.update(1, titled("A"), Expect::Live).await.unwrap();
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let again = store.create(new_post("a"), Some(&first)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.stored.post.title, "a");
    assert_eq!((again.stored.seq, again.stored.post.updated_at), (1, None));
    assert_eq!(store.head().unwrap().seq, Some(2));
    assert_eq!(key_entries(&store), (1, 1));
    store.close().unwrap();
}

#[async_std::test]
async fn expired_keys_are_forgotten_and_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Expired as soon as its round is over.
    let gone = once("k", r#"{"title":"a","content":"c"}"#, Duration::ZERO);
    let made = store.create(new_post("a"), Some(&gone)).await.unwrap();
    assert_eq!(key_entries(&store), (1, 1));
    // The key is free again: a new post, a new record in place of the
    // old one (whose expiry entry goes with it).
    let fresh = store.create(new_post("a"), Some(&gone)).await.unwrap();
    assert!(!fresh.replayed);
    assert_ne!(fresh.stored.post.id, made.stored.post.id);
    assert_eq!(key_entries(&store), (1, 1));
    // The next round (any write) deletes the expired record.
    store.create_post(new_post("x")).await.unwrap();
    assert_eq!(key_entries(&store), (0, 0));
    assert_eq!(store.keys_expired.load(Ordering::Relaxed), 1);
    // A live key is kept by the sweep.
    let kept = once(
        "k2",
        r#"{"title":"a","content":"c"}"#,
        Duration::from_secs(60),
    );
    store.create(new_post("a"), Some(&kept)).await.unwrap();
    store.create_post(new_post("y")).await.unwrap();
    assert_eq!(key_entries(&store), (1, 1));
    store.close().unwrap();
}

#[test]
fn a_data_dir_of_the_first_layout_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        let legacy = db.open_tree(LEGACY_TREE).unwrap();
        for id in [1u64, 2] {
            let json = format!(
                r#"{{"id":{id},"title":"t","content":"c","author":null,"createdAt":"2026-01-01T00:00:00.000Z"}}"#
            );
            legacy.insert(id.to_be_bytes(), json.as_bytes()).unwrap();
        }
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let found = store.post(2).unwrap().unwrap();
    assert_eq!(found.seq, 2);
    let post: serde_json::Value = serde_json::from_slice(&found.json).unwrap();
    assert_eq!(post["updatedAt"], serde_json::Value::Null);
    assert_eq!(store.head().unwrap().seq, Some(2));
    store.close().unwrap();
}

/// The entries in the tree under `prefix`.
fn entries(store: &Store, prefix: u8) -> usize {
    let count = |h: &shared::Handles| Ok(h.tree.scan_prefix([prefix]).count());
    store.shared.read(count).unwrap()
}

/// Asserts that a replay of everything up to `upto`, of every feed and of
/// the main feed, is `expected` (seq, post id).
fn replays_as(store: &Store, upto: u64, expected: &[(u64, u64)]) {
    let span = Span {
        since: 0,
        from: 0,
        upto,
        limit: 100,
    };
    let main: Vec<Arc<str>> = vec![DEFAULT_FEED.into()];
    for feeds in [None, Some(&main[..])] {
        let seqs: Vec<_> = store
            .replay(span, feeds)
            .unwrap()
            .iter()
            .map(|d| (d.seq, d.post_id))
            .collect();
        assert_eq!(seqs, expected, "{feeds:?}");
    }
}

#[async_std::test]
async fn creates_write_no_change_entries_and_replay_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for title in ["a", "b", "c"] {
        store.create_post(new_post(title)).await.unwrap();
    }
    assert_eq!(entries(&store, keys::CHANGE), 0);
    assert_eq!(entries(&store, keys::FEED_CHANGE), 0);
    store.update(2, titled("B"), Expect::Live).await.unwrap();
    store.delete(3, Expect::Live).await.unwrap();
    assert_eq!(entries(&store, keys::CHANGE), 2);
    assert_eq!(entries(&store, keys::FEED_CHANGE), 2);
    replays_as(&store, 5, &[(1, 1), (4, 2)]);
    assert_eq!(store.head().unwrap().seq, Some(5));
    store.close().unwrap();
    drop(store);
    // The seq counter is found again on open from the newest change.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.create_post(new_post("d")).await.unwrap().post.id, 6);
    store.close().unwrap();
}

#[async_std::test]
async fn creates_with_change_entries_of_the_earlier_layout_replay_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for title in ["a", "b"] {
        store.create_post(new_post(title)).await.unwrap();
    }
    // The earlier layout also indexed creates by seq.
    let old_layout = |h: &shared::Handles| {
        for id in [1u64, 2] {
            h.tree
                .insert(keys::key(keys::CHANGE, id), &id.to_be_bytes())?;
            let key = keys::feed_key(keys::FEED_CHANGE, DEFAULT_FEED, id);
            h.tree.insert(key, &id.to_be_bytes())?;
        }
        Ok(())
    };
    store.shared.read(old_layout).unwrap();
    store.update(1, titled("A"), Expect::Live).await.unwrap();
    // Post 1's entries moved to its edit; post 2's old ones stay.
    assert_eq!(entries(&store, keys::CHANGE), 2);
    replays_as(&store, 3, &[(2, 2), (3, 1)]);
    store.close().unwrap();
}
