//! `fnatd replay` through configs/passthrough.toml: what goes in comes out, byte for byte, in
//! order, with testpmd-style statistics and exact accounting. Frames are read with pcap-file.

use std::time::Duration;

use fnat_tests::*;

fn replay(args: &[String]) -> Finished {
    fnatd_replay(&config("passthrough.toml"), args, Duration::from_secs(60))
}

fn assert_same_frames(input: &[CapturedFrame], output: &[CapturedFrame]) {
    assert_eq!(input.len(), output.len(), "frame count differs");
    for (i, (a, b)) in input.iter().zip(output).enumerate() {
        assert_eq!(a.data, b.data, "frame {i} differs");
    }
}

#[test]
fn real_http_capture_passes_through_byte_identical() {
    let dir = TempDir::new("replay-http");
    let input = real_capture("http.pcap");
    let out = dir.join("out.pcap");
    let run = replay(&[
        format!("--rx=a={}", input.display()),
        format!("--tx=b={}", out.display()),
    ]);
    assert_eq!(
        run.code(),
        Some(0),
        "stderr:\n{}\nstdout:\n{}",
        run.stderr,
        run.stdout
    );

    let frames_in = read_pcap(&input);
    let frames_out = read_pcap(&out);
    assert_eq!(frames_in.len(), 43, "the dpkt http.pcap has 43 frames");
    assert_same_frames(&frames_in, &frames_out);

    assert_eq!(port_counts(&run.stdout, 0), (43, 0), "{}", run.stdout);
    assert_eq!(port_counts(&run.stdout, 1), (0, 43), "{}", run.stdout);
    assert!(run
        .stdout
        .contains("Accumulated forward statistics for all ports"));
    assert!(
        run.stdout.contains(
            "accounted: RX 43 + originated 0 = forwarded 43 + dropped 0 + consumed 0 + held 0"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn both_directions_at_once_keep_their_order() {
    let dir = TempDir::new("replay-both");
    let in_a = real_capture("http.pcap");
    let in_b = real_capture("nb6-http.pcap");
    let (out_a, out_b) = (dir.join("a.pcap"), dir.join("b.pcap"));
    let run = replay(&[
        format!("--rx=a={}", in_a.display()),
        format!("--rx=b={}", in_b.display()),
        format!("--tx=a={}", out_a.display()),
        format!("--tx=b={}", out_b.display()),
    ]);
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
    assert_same_frames(&read_pcap(&in_a), &read_pcap(&out_b));
    assert_same_frames(&read_pcap(&in_b), &read_pcap(&out_a));
    assert!(
        run.stdout.contains(
            "accounted: RX 105 + originated 0 = forwarded 105 + dropped 0 + consumed 0 + held 0"
        ),
        "{}",
        run.stdout
    );
}

/// Far more frames than a burst, a descriptor ring or testpmd's 512-frame flush: none lost.
#[test]
fn large_capture_loses_nothing() {
    let dir = TempDir::new("replay-large");
    let mut frames = Vec::new();
    for i in 0..20_000u32 {
        let payload_len = (i as usize * 37) % 1473;
        let payload: Vec<u8> = (0..payload_len).map(|b| (b as u32 ^ i) as u8).collect();
        let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 0, (i % 250) as u8 + 1], [198, 19, 1, 10], 64)
            .udp(1024 + (i % 60000) as u16, 53);
        let mut data = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut data, &payload).unwrap();
        frames.push(CapturedFrame {
            ts_ns: 1_700_000_000_000_000_000 + u128::from(i) * 1000,
            data,
        });
    }
    let input = dir.join("in.pcap");
    write_pcap(&input, &frames);
    let out = dir.join("out.pcap");
    let run = replay(&[
        format!("--rx=a={}", input.display()),
        format!("--tx=b={}", out.display()),
    ]);
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
    assert_same_frames(&frames, &read_pcap(&out));
    assert!(
        run.stdout
            .contains("accounted: RX 20000 + originated 0 = forwarded 20000 + dropped 0 + consumed 0 + held 0"),
        "{}",
        run.stdout
    );
}

#[test]
fn unknown_port_or_missing_input_is_a_usage_error() {
    let dir = TempDir::new("replay-bad");
    let run = replay(&[format!("--rx=c={}", real_capture("http.pcap").display())]);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr.contains("no port 'c'"), "{}", run.stderr);

    let run = replay(&[format!("--rx=a={}", dir.join("missing.pcap").display())]);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr.contains("missing.pcap"), "{}", run.stderr);

    let input = real_capture("http.pcap");
    let run = replay(&[
        format!("--rx=a={}", input.display()),
        format!("--tx=b={}", input.display()),
    ]);
    assert_eq!(run.code(), Some(2), "the input must not be overwritten");
    assert!(run.stderr.contains("also an --rx input"), "{}", run.stderr);
    assert_eq!(read_pcap(&input).len(), 43);
}

/// Two captures into one output: replay interleaves them by capture time, not a burst of one
/// port then a burst of the other.
#[test]
fn ports_are_merged_in_capture_time_order() {
    let dir = TempDir::new("replay-merge");
    let cfg = dir.join("merge.toml");
    std::fs::write(
        &cfg,
        "[[port]]\nname = \"a\"\ndevice = \"net_ring0\"\n\n[[port]]\nname = \"b\"\ndevice = \"net_ring1\"\n\n\
         [[port]]\nname = \"c\"\ndevice = \"net_ring2\"\n\n[forward]\na = \"c\"\nb = \"c\"\n",
    )
    .unwrap();
    let frame = |port: u8, i: u32| {
        let builder =
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, port], [2, 0, 0, 0, 0, 9])
                .ipv4([198, 18, 0, port], [198, 19, 1, 10], 64)
                .udp(1000 + i as u16, 53);
        let payload = i.to_be_bytes();
        let mut data = Vec::new();
        builder.write(&mut data, &payload).unwrap();
        // a at even microseconds, b at odd ones.
        CapturedFrame {
            ts_ns: 1_000_000_000 + u128::from(i * 2 + u32::from(port)) * 1000,
            data,
        }
    };
    let a: Vec<CapturedFrame> = (0..200).map(|i| frame(0, i)).collect();
    let b: Vec<CapturedFrame> = (0..200).map(|i| frame(1, i)).collect();
    let (in_a, in_b, out) = (dir.join("a.pcap"), dir.join("b.pcap"), dir.join("c.pcap"));
    write_pcap(&in_a, &a);
    write_pcap(&in_b, &b);
    let args = [
        format!("--rx=a={}", in_a.display()),
        format!("--rx=b={}", in_b.display()),
        format!("--tx=c={}", out.display()),
    ];
    fnatd_replay_ok(&cfg, &args, Duration::from_secs(60));
    let mut expected: Vec<CapturedFrame> = a.into_iter().chain(b).collect();
    expected.sort_by_key(|f| f.ts_ns);
    assert_same_frames(&expected, &read_pcap(&out));
}
