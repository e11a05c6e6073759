//! Both framers take input cut anywhere (the first byte picks the cut size) and never panic or
//! hold a record above their limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use talkback_core::protocol::Protocol;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let cut = usize::from(cut).max(1);
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let max = 4096;
        let mut framer = protocol.framer(max);
        'chunks: for chunk in rest.chunks(cut) {
            framer.push(chunk);
            loop {
                match framer.next_record() {
                    Ok(Some(record)) => {
                        assert!(record.len() <= max);
                        let _ = protocol.decode(&record);
                    }
                    Ok(None) => break,
                    Err(_) => break 'chunks,
                }
            }
        }
    }
});
