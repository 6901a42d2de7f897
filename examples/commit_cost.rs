//! Bytes written to storage (`/proc/self/io` write_bytes) per durable redb commit that
//! inserts one 400-byte value into a 2000-entry table, by commit options: the measurement
//! behind the block log (store/wal.rs). Run: `cargo run --release --example commit_cost`.
//!
//! Measured 2026-11-22 on the 2-core x86_64 dev box (ext4 on virtio): quick-repair (which
//! forces two-phase commit) + touching a second table 53 KB, quick-repair 49 KB, two-phase
//! only 37 KB, plain `Immediate` 33 KB per commit: 8-13 dirty 4 KiB pages whatever the
//! payload, so a redb commit per flush cannot be made cheap by trimming options alone.
use redb::{Database, Durability, TableDefinition};

const T: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const M: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn wb() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn main() {
    let n = 200u64;
    for (name, qr, tpc, meta) in [
        ("quick_repair (2pc forced) + meta", true, true, true),
        ("quick_repair (2pc forced)", true, true, false),
        ("2pc only", false, true, false),
        ("plain immediate", false, false, false),
        ("plain immediate + meta", false, false, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        let db = Database::builder()
            .set_cache_size(4 << 20)
            .create(&path)
            .unwrap();
        // Some existing data so the tree has depth.
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(T).unwrap();
            for i in 0..2000u64 {
                t.insert(i, vec![7u8; 600].as_slice()).unwrap();
            }
        }
        w.commit().unwrap();
        let v = vec![3u8; 400];
        let a = wb();
        for i in 0..n {
            let mut w = db.begin_write().unwrap();
            w.set_durability(Durability::Immediate).unwrap();
            w.set_quick_repair(qr);
            w.set_two_phase_commit(tpc);
            {
                let mut t = w.open_table(T).unwrap();
                t.insert(10_000 + i, v.as_slice()).unwrap();
            }
            if meta {
                let mut m = w.open_table(M).unwrap();
                m.insert("next_seq", i).unwrap();
            }
            w.commit().unwrap();
        }
        let b = wb();
        println!(
            "{name:40} {:>8} bytes/commit  file {} bytes",
            (b - a) / n,
            std::fs::metadata(&path).unwrap().len()
        );
    }
}
