/// An error in the differential test's own set-up (bad environment, a workload statement the
/// server rejected): not a finding about the agent.
struct DifferentialTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
