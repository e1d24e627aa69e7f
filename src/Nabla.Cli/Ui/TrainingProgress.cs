using System.Diagnostics;
using Spectre.Console;

namespace Nabla.Cli.Ui;

/// <summary>
/// Shows training progress: a live Spectre.Console progress bar (step, loss, accuracy, samples/s, ETA) on an
/// interactive terminal, plain log lines when output is redirected (CI logs, files, pipes).
/// </summary>
public sealed class TrainingProgress
{
    private readonly int _totalSteps;
    private readonly string _unit;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private ProgressTask? _task;
    private DateTime _lastLine = DateTime.MinValue;

    public TrainingProgress(int totalSteps, string unit = "samples")
    {
        _totalSteps = totalSteps;
        _unit = unit;
    }

    public static bool Interactive => AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected;

    /// <summary>Runs <paramref name="body"/> with a live bar (interactive) or without one (redirected).</summary>
    public void Run(Action body)
    {
        if (!Interactive) { body(); return; }
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                _task = ctx.AddTask("starting", maxValue: _totalSteps);
                body();
                _task.Value = _task.MaxValue;
            });
    }

    /// <summary>Called after every step with a one-line status ("epoch 3/20 loss 0.41 acc 88.1%").</summary>
    public void Step(int step, string status, double rate)
    {
        var text = $"step {step}/{_totalSteps}  {status}  {rate:N0} {_unit}/s";
        if (_task != null)
        {
            _task.Description = Markup.Escape(text);
            _task.Value = step;
            return;
        }
        // Redirected output: a line every few seconds, so logs show progress without flooding.
        if ((DateTime.UtcNow - _lastLine).TotalSeconds >= 5 || step == _totalSteps)
        {
            _lastLine = DateTime.UtcNow;
            double eta = step == 0 ? 0 : _clock.Elapsed.TotalSeconds / step * (_totalSteps - step);
            Console.WriteLine($"{text}  eta {TimeSpan.FromSeconds(Math.Round(eta)):g}");
        }
    }

    /// <summary>A line that stays (epoch summaries), printed above the bar when there is one.</summary>
    public void Line(string text)
    {
        if (_task != null) AnsiConsole.MarkupLine(Markup.Escape(text));
        else Console.WriteLine(text);
    }
}
