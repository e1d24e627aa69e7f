using Nabla.Data;

namespace Nabla.Tests.Data;

public class LabelNoiseTests
{
    private static readonly int[] Labels = Enumerable.Range(0, 20_000).Select(i => i % 10).ToArray();

    [Fact]
    public void ReplacesAboutTheShareAskedForWithUniformlyDrawnWrongClasses()
    {
        var noisy = LabelNoise.Corrupt(Labels, 10, 0.2, seed: 7);
        var changed = Enumerable.Range(0, Labels.Length).Where(i => noisy[i] != Labels[i]).ToList();
        // Binomial(20000, 0.2): mean 4000, sd 57; a changed label is wrong by construction, so every draw counts.
        Assert.InRange(changed.Count, 4000 - 300, 4000 + 300);
        // Among the labels of class 3 that changed, each of the 9 other classes comes up about equally often.
        var fromThree = changed.Where(i => Labels[i] == 3).Select(i => noisy[i]).ToList();
        Assert.DoesNotContain(3, fromThree);
        foreach (var c in Enumerable.Range(0, 10).Where(c => c != 3))
            Assert.InRange(fromThree.Count(l => l == c), fromThree.Count / 9.0 * 0.6, fromThree.Count / 9.0 * 1.4);
        Assert.All(noisy, l => Assert.InRange(l, 0, 9));
    }

    [Fact]
    public void IsAFunctionOfTheSeedAndLeavesTheInputAlone()
    {
        var copy = Labels.ToArray();
        Assert.Equal(LabelNoise.Corrupt(Labels, 10, 0.3, seed: 1), LabelNoise.Corrupt(Labels, 10, 0.3, seed: 1));
        Assert.NotEqual(LabelNoise.Corrupt(Labels, 10, 0.3, seed: 1), LabelNoise.Corrupt(Labels, 10, 0.3, seed: 2));
        Assert.Equal(copy, Labels);
        Assert.Equal(Labels, LabelNoise.Corrupt(Labels, 10, 0, seed: 1));
        var all = LabelNoise.Corrupt(Labels, 10, 1, seed: 1);
        Assert.All(Enumerable.Range(0, Labels.Length), i => Assert.NotEqual(Labels[i], all[i]));
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        Assert.Contains("probability", Assert.Throws<ArgumentException>(() => LabelNoise.Corrupt(Labels, 10, 1.5, 1)).Message);
        Assert.Contains("Label 10 at index 0", Assert.Throws<ArgumentException>(() => LabelNoise.Corrupt([10], 10, 0.5, 1)).Message);
    }
}
