// The test classes run one at a time: each starts two or three silos, and the fault tests hand grains over and recover
// within timeouts. Run side by side on two cores, they starved each other into rare races (see docs/RELIABILITY.md).
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
