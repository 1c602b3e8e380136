/// Comparison of secrets whose duration depends only on the expected value's length, never on
/// where the first difference is, so timing tells an attacker nothing about a token's prefix.
enum ConstantTime {
    static func equals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference: UInt8 = given.count == expected.count ? 0 : 1
        for index in 0..<expected.count {
            let byte = index < given.count ? given[index] : 0
            difference |= byte ^ expected[index]
        }
        return difference == 0
    }
}
