// SPDX-License-Identifier: GPL-2.0

//! Tallies what a `restore` corpus reaches: results, rejections and chain errors by
//! kind, so a campaign's coverage can be read in the parser's own terms.
//!
//!     cargo run --release --example corpus-stats -- DIR...      (from abi/fuzz/)

use std::collections::BTreeMap;

use luo_abi_fuzz::restore_outcome;

fn kind(debug: String) -> String {
    // "FileChain { name: .., error: Cycle(4096) }" -> "FileChain/Cycle"
    let head: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    match debug.find("error: ") {
        Some(at) => {
            let error: String = debug[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect();
            format!("{head}/{error}")
        }
        None => head,
    }
}

fn main() {
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut inputs = 0;
    for dir in std::env::args().skip(1) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            let out = restore_outcome(&data);
            inputs += 1;
            let result = match &out.result {
                Ok(_) => match out.kept.len() {
                    n @ 0..=2 => format!("result Ok, {n} kept"),
                    _ => "result Ok, 3+ kept".to_string(),
                },
                Err(e) => format!("result {e:?}"),
            };
            *tally.entry(result).or_default() += 1;
            for r in &out.rejections {
                let r = match r {
                    luo_abi::restore::Rejection::SessionChain(e) => {
                        format!("SessionChain/{}", kind(format!("{e:?}")))
                    }
                    other => kind(format!("{other:?}")),
                };
                *tally.entry(format!("rejection {r}")).or_default() += 1;
            }
        }
    }
    println!("{inputs} inputs");
    for (what, n) in tally {
        println!("{n:>8}  {what}");
    }
}
