using System.CommandLine;

namespace Nabla.Cli.Runs;

/// <summary>
/// The options of every training command that name its run directory and where it trains: --out, --resume and
/// --device. A resumed run is rebuilt from its config.json, so an option that would define the run differently is
/// refused (naming it) rather than silently ignored; only --device and the options the command declares as session
/// options (--quiet, --ranks, ...) may be given (a run resumes on any device: checkpoints hold host tensors).
/// </summary>
internal sealed class RunOptions
{
    private readonly string _runPrefix;
    private readonly HashSet<Option> _sessionOptions;

    public Option<string?> Out { get; }
    public Option<bool> Resume { get; } = new("--resume") { Description = "Continue the run in --out from its last checkpoint (the other options come from its config.json)." };
    public Option<string> Device { get; } = DeviceOption.Create();

    /// <param name="runPrefix">Name of a run directory made when --out is not given: runs/PREFIX-TIME.</param>
    public RunOptions(string runPrefix)
    {
        _runPrefix = runPrefix;
        Out = new("--out") { Description = $"Run directory (default: runs/{runPrefix}-<time>)." };
        _sessionOptions = [Out, Resume, Device];
    }

    /// <summary>Adds --out, --resume and --device to <paramref name="command"/>; <paramref name="sessionOptions"/> are
    /// options of the command that do not define the run (how it is shown or where it runs), so --resume accepts them.</summary>
    public void AddTo(Command command, params Option[] sessionOptions)
    {
        command.Options.Add(Out);
        command.Options.Add(Resume);
        command.Options.Add(Device);
        _sessionOptions.UnionWith(sessionOptions);
    }

    /// <summary>The device --device names; with several ranks only the CPU (the communicators exchange host memory).</summary>
    public Device TrainingDevice(ParseResult p, DistributedRun? distributed = null)
    {
        var device = DeviceOption.Resolve(p.GetValue(Device)!);
        if (distributed is { Size: > 1 } && !device.IsCpu) throw new CliException($"--device {device}: data-parallel training runs on the CPU only.");
        return device;
    }

    /// <summary>The run directory and whether to resume it: --out (which --resume needs), or a new runs/PREFIX-TIME.
    /// With --resume, an option given that would change the run is an error naming it.</summary>
    public (string Directory, bool Resume) RunDirectory(ParseResult p)
    {
        if (!p.GetValue(Resume)) return (Runs.RunDirectory.ForNewRun(p.GetValue(Out), _runPrefix), false);
        var directory = Runs.RunDirectory.ToResume(p.GetValue(Out));
        foreach (var option in p.CommandResult.Command.Options)
            if (!_sessionOptions.Contains(option) && p.GetResult(option) is { Implicit: false })
                throw new CliException($"{option.Name}: --resume continues the run in {directory} as its config.json defines it; " +
                    $"drop {option.Name}, or start a new run with another --out.");
        return (directory, true);
    }
}
