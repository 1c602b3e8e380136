extension Duration {
    /// The duration in seconds, as a floating-point number (validation timings, slow-batch logs).
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
