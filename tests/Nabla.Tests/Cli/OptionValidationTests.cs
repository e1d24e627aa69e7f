using System.CommandLine;

namespace Nabla.Tests.Cli;

public class OptionValidationTests
{
    private static IEnumerable<(string Command, Option Option)> AllOptions(Command command, string path)
    {
        foreach (var option in command.Options) yield return (path, option);
        foreach (var sub in command.Subcommands)
            foreach (var o in AllOptions(sub, $"{path} {sub.Name}")) yield return o;
    }

    [Fact]
    public void EveryNumericOptionOfEveryCommandHasARangeCheck()
    {
        var numeric = new[] { typeof(int), typeof(long), typeof(float), typeof(double) };
        var withoutCheck = AllOptions(Nabla.Cli.NablaCli.Build(), "nabla")
            .Where(o => numeric.Contains(Nullable.GetUnderlyingType(o.Option.ValueType) ?? o.Option.ValueType) && o.Option.Validators.Count == 0)
            .Select(o => $"{o.Command} {o.Option.Name}").ToList();
        Assert.True(withoutCheck.Count == 0, "numeric options without a range check: " + string.Join(", ", withoutCheck));
    }
}
