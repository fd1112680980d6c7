import Testing
@testable import IdlegateProxy

struct LatencyHistogramTests {
    @Test func bucketsAreInclusiveUpperBounds() {
        #expect(LatencyHistogram.bucket(0) == 0)
        #expect(LatencyHistogram.bucket(1_000_000) == 0)            // le="0.001" holds exactly 1 ms
        #expect(LatencyHistogram.bucket(1_000_001) == 1)
        #expect(LatencyHistogram.bucket(10_000_000_000) == 12)      // le="10"
        #expect(LatencyHistogram.bucket(10_000_000_001) == 13)      // only +Inf
        #expect(LatencyHistogram.labels.count == LatencyHistogram.bounds.count)
    }

    @Test func workersAddUpInTheText() {
        let h = LatencyHistogram(name: "t_seconds", help: "test")
        var a = WorkerCounts()
        var b = WorkerCounts()
        let metrics = ProxyMetrics()
        a.latency(nanos: 500_000)         // 0.5 ms
        a.latency(nanos: 3_000_000)       // 3 ms
        b.latency(nanos: 20_000_000_000)  // 20 s
        // Flushed into their own histogram through the same path the workers use.
        a.flush(into: metrics)
        b.flush(into: metrics)
        let text = metrics.upstreamLatency.prometheusText()
        #expect(text.contains("# TYPE idlegate_upstream_response_seconds histogram\n"))
        #expect(text.contains("idlegate_upstream_response_seconds_bucket{le=\"0.001\"} 1\n"))
        #expect(text.contains("idlegate_upstream_response_seconds_bucket{le=\"0.0025\"} 1\n"))
        #expect(text.contains("idlegate_upstream_response_seconds_bucket{le=\"0.005\"} 2\n"))
        #expect(text.contains("idlegate_upstream_response_seconds_bucket{le=\"10\"} 2\n"))
        #expect(text.contains("idlegate_upstream_response_seconds_bucket{le=\"+Inf\"} 3\n"))
        #expect(text.contains("idlegate_upstream_response_seconds_count 3\n"))
        #expect(text.contains("idlegate_upstream_response_seconds_sum 20.0035\n"))
        // A second flush with nothing new changes nothing.
        a.flush(into: metrics)
        #expect(metrics.upstreamLatency.prometheusText() == text)
        h.add([Int64](repeating: 1, count: LatencyHistogram.bounds.count + 1), sumNanos: 1_500_000_000)
        #expect(h.prometheusText().hasSuffix("t_seconds_bucket{le=\"+Inf\"} 14\nt_seconds_sum 1.5\nt_seconds_count 14\n"))
    }
}
