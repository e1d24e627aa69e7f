using System.Diagnostics;
using Nabla.Training;

namespace Nabla.Cli.Ui;

/// <summary>How a training session ended.</summary>
public enum TrainingOutcome
{
    /// <summary>Every step of the run is done.</summary>
    Finished,
    /// <summary>The session's time limit ran out; a checkpoint of the last step is saved.</summary>
    TimeLimit,
    /// <summary>Ctrl+C (or the command's cancellation); a checkpoint of the last step is saved.</summary>
    Interrupted,
}

/// <summary>
/// Runs the remaining steps of every training command's <see cref="Trainer"/> under its progress display. Ctrl+C stops
/// after the current step (the step is never torn: the process does not exit under it), a checkpoint of that step is
/// saved and a line says how to continue (`COMMAND --out DIR --resume`), so a stopped run resumes exactly.
/// </summary>
public static class TrainingLoop
{
    /// <summary>Test only: "STEP" stops the run after that step as Ctrl+C would.</summary>
    public const string StopVariable = "NABLA_TEST_STOP_AT_STEP";
    /// <summary>Test only: "RANK:STEP" makes that rank (0 for a single process) kill itself (SIGKILL, as a crash would) after that step.</summary>
    public const string KillVariable = "NABLA_TEST_KILL_RANK_AT_STEP";

    /// <param name="command">The command line that resumes the run, less its options ("nabla train gpt").</param>
    /// <param name="timeLimit">Stop the session after the step that ends this long after it started (null: no limit); a
    /// session always makes one step, however busy the machine.</param>
    public static TrainingOutcome Run(Trainer trainer, TrainingProgress progress, string command, CancellationToken cancel, TimeSpan? timeLimit = null)
    {
        using var interrupt = new CancellationTokenSource();
        using var outOfTime = new CancellationTokenSource();
        if (timeLimit is { } limit)
        {
            var session = Stopwatch.StartNew();
            trainer.AfterStep += _ =>
            {
                if (session.Elapsed >= limit) outOfTime.Cancel();
            };
        }
        AttachTestHooks(trainer, interrupt);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; interrupt.Cancel(); };
        Console.CancelKeyPress += onCancel;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel, interrupt.Token, outOfTime.Token);
        try
        {
            progress.Run(() => trainer.Train(stop.Token));
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        if (trainer.Step == trainer.Options.Steps) return TrainingOutcome.Finished;
        // Every rank saves: with a sharded optimizer the checkpoint gathers the state of all of them.
        trainer.SaveCheckpoint();
        bool timeUp = outOfTime.IsCancellationRequested && !interrupt.IsCancellationRequested && !cancel.IsCancellationRequested;
        Console.WriteLine($"{(timeUp ? "time limit reached" : "interrupted")} at step {trainer.Step} of {trainer.Options.Steps}; checkpoint saved. " +
            $"Continue with: {command} --out {trainer.RunDirectory} --resume");
        return timeUp ? TrainingOutcome.TimeLimit : TrainingOutcome.Interrupted;
    }

    /// <summary>Prints where a resumed run continues from (its epoch when the checkpoint ends one, else its step), and
    /// any damaged checkpoint it passed over (even when quiet).</summary>
    /// <param name="stepsPerEpoch">For epoch-based commands; 0 reports the step only.</param>
    public static void PrintResume(ResumeInfo? resumed, bool quiet = false, int stepsPerEpoch = 0)
    {
        if (resumed == null) return;
        foreach (var skipped in resumed.Skipped)
            (quiet ? Console.Error : Console.Out).WriteLine($"warning: passed over a damaged checkpoint: {skipped}");
        if (quiet) return;
        Console.WriteLine(stepsPerEpoch > 0 && resumed.Step % stepsPerEpoch == 0
            ? $"resumed from the checkpoint at epoch {resumed.Step / stepsPerEpoch}"
            : $"resumed from the checkpoint at step {resumed.Step}");
    }

    private static void AttachTestHooks(Trainer trainer, CancellationTokenSource interrupt)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable(StopVariable), out var stopAt))
            trainer.AfterStep += s =>
            {
                if (s.Step == stopAt) interrupt.Cancel();
            };
        var kill = Environment.GetEnvironmentVariable(KillVariable)?.Split(':');
        if (kill is [var rank, var step] && int.TryParse(rank, out var r) && int.TryParse(step, out var killAt) && r == trainer.Communicator.Rank)
            trainer.AfterStep += s =>
            {
                if (s.Step != killAt) return;
                Console.Error.WriteLine($"rank {r}: killing itself after step {killAt} ({KillVariable})");
                Process.GetCurrentProcess().Kill();
            };
    }
}
