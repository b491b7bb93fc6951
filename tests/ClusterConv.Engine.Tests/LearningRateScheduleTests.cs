using ClusterConv.Engine.Optimizers;

namespace ClusterConv.Engine.Tests;

public class LearningRateScheduleTests
{
    [Fact]
    public void Constant_gives_the_base_rate_at_every_step()
    {
        var schedule = LearningRateSchedules.Create("constant", 0.01f, 100);
        Assert.All(new long[] { 0, 1, 99, 1000 }, t => Assert.Equal(0.01f, schedule.At(t)));
    }

    [Fact]
    public void Step_multiplies_by_the_factor_every_n_steps()
    {
        var schedule = LearningRateSchedules.Create("step:every=10,factor=0.5", 0.8f, 100);
        Assert.Equal(0.8f, schedule.At(0));
        Assert.Equal(0.8f, schedule.At(9));
        Assert.Equal(0.4f, schedule.At(10));
        Assert.Equal(0.2f, schedule.At(25));
    }

    [Fact]
    public void Step_defaults_to_a_tenth_every_third_of_the_run()
    {
        var schedule = Assert.IsType<StepSchedule>(LearningRateSchedules.Create("step", 1f, 300));
        Assert.Equal((100L, 0.1f), (schedule.Every, schedule.Factor));
        Assert.Equal(0.01f, schedule.At(250), 7);
    }

    [Fact]
    public void Cosine_falls_from_the_base_rate_to_zero_over_the_total_steps()
    {
        var schedule = LearningRateSchedules.Create("cosine", 0.1f, 100);
        Assert.Equal(0.1f, schedule.At(0), 7);
        Assert.Equal(0.05f, schedule.At(50), 7);
        Assert.Equal(0.1 * 0.5 * (1 + Math.Cos(Math.PI * 0.25)), schedule.At(25), 6);
        Assert.Equal(0f, schedule.At(100), 7);
        Assert.Equal(0f, schedule.At(150), 7);
    }

    [Fact]
    public void Cosine_warmup_rises_linearly_then_decays_over_the_remaining_steps_to_the_minimum()
    {
        var schedule = LearningRateSchedules.Create("cosine:warmup=10,min=0.01", 0.1f, 110);
        Assert.Equal(0.01f, schedule.At(0), 7);
        Assert.Equal(0.05f, schedule.At(4), 7);
        Assert.Equal(0.1f, schedule.At(9), 7);
        Assert.Equal(0.1f, schedule.At(10), 7);
        Assert.Equal(0.055f, schedule.At(60), 6);
        Assert.Equal(0.01f, schedule.At(110), 7);
    }

    [Theory]
    [InlineData("linear", "linear")]
    [InlineData("step:evry=10", "evry")]
    [InlineData("step:every=0", "every")]
    [InlineData("step:factor=2", "factor")]
    [InlineData("cosine:warmup=500", "warmup")]
    [InlineData("cosine:min=abc", "min")]
    [InlineData("constant:every=3", "every")]
    public void A_bad_schedule_is_rejected_naming_what_to_fix(string text, string named)
    {
        var error = Assert.Throws<ArgumentException>(() => LearningRateSchedules.Create(text, 0.1f, 100));
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }
}
