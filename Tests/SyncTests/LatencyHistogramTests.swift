import Sync
import Testing

@Suite struct LatencyHistogramTests {
    @Test func percentilesAreTheBucketAboveTheRankedSample() {
        var histogram = LatencyHistogram()
        for value in [1.0, 2.0, 3.0, 4.0, 450.0] { histogram.record(milliseconds: value) }
        #expect(histogram.count == 5)
        #expect(histogram.percentile(0.5) == 3.1)
        #expect(histogram.percentile(0.99) == 460)
        #expect(histogram.maximum == 450)
    }

    @Test func subtractingAnEarlierCopyLeavesOnlyTheLaterSamples() {
        var histogram = LatencyHistogram()
        histogram.record(milliseconds: 500)  // a restart's catch-up, before the measured phase
        let earlier = histogram
        for value in [1.0, 2.0, 3.0] { histogram.record(milliseconds: value) }
        let later = histogram.subtracting(earlier)
        #expect(later.count == 3)
        #expect(later.percentile(0.99) == 3.1)
        #expect(later.maximum == 3.1)  // the 500 ms sample is gone; the maximum to bucket precision

        histogram.record(milliseconds: 600)
        let withNewMaximum = histogram.subtracting(earlier)
        #expect(withNewMaximum.count == 4)
        #expect(withNewMaximum.maximum == 600)  // recorded after the copy: exact
    }
}
