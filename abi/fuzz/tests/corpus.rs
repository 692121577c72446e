// SPDX-License-Identifier: GPL-2.0

//! Replays the committed seed corpus through both checks, without libFuzzer:
//! `cargo test` in abi/fuzz/ on any toolchain.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        n += 1;
    }
    n
}

#[test]
fn restore_seeds_pass() {
    assert!(replay("restore", luo_abi_fuzz::check_restore) >= 5);
}

#[test]
fn chain_seeds_pass() {
    assert!(
        replay("chain", |data| {
            let _ = luo_abi_fuzz::check_chain(data);
        }) >= 3
    );
}

#[test]
fn truncated_seeds_pass() {
    // Every prefix of a seed is an input too: fields cut short read as zero.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let restore = std::fs::read(dir.join("restore/bad-mix")).unwrap();
    for len in (0..=restore.len()).step_by(7) {
        luo_abi_fuzz::check_restore(&restore[..len]);
    }
    let chain = std::fs::read(dir.join("chain/sessions-cycle")).unwrap();
    for len in (0..=chain.len()).step_by(7) {
        let _ = luo_abi_fuzz::check_chain(&chain[..len]);
    }
}
