using System.CommandLine;
using System.CommandLine.Parsing;
using System.Diagnostics;
using Nabla.Distributed;
using Nabla.IO;
using Nabla.Kernels.Cpu;

namespace Nabla.Cli.Runs;

/// <summary>
/// What makes a `nabla train` command data parallel. Started by mpirun (which sets OMPI_COMM_WORLD_SIZE), the process
/// joins the MPI job as one rank: ranks other than 0 print nothing and write nothing, kernels get cores / (ranks on
/// this machine) threads unless NABLA_THREADS says otherwise, and a rank that fails prints its error naming itself and
/// aborts the whole job (the others would otherwise wait for it forever). Started without mpirun, it is one
/// process, unless --ranks N asks for N: then it runs itself N times under a local mpirun and waits.
/// </summary>
internal sealed class DistributedRun : IDisposable
{
    /// <summary>Set by mpirun (Open MPI) in each process it starts.</summary>
    public const string WorldSizeVariable = "OMPI_COMM_WORLD_SIZE";

    private readonly MpiCommunicator? _mpi;

    private DistributedRun(MpiCommunicator? mpi) => _mpi = mpi;

    public static Option<int> RanksOption()
    {
        var ranks = new Option<int>("--ranks")
        {
            Description = "Data-parallel training on N processes of this machine (runs itself under mpirun; each process trains on 1/N of every batch). " +
                "For several machines run `mpirun -np N nabla train ...` instead.",
            DefaultValueFactory = _ => 1,
        };
        ranks.Positive(4096);
        return ranks;
    }

    /// <summary>The communicator to train with: null for a single process.</summary>
    public ICommunicator? Communicator => _mpi;
    public int Rank => _mpi?.Rank ?? 0;
    public int Size => _mpi?.Size ?? 1;
    /// <summary>True on the process that prints and writes the run's files.</summary>
    public bool IsWriter => Rank == 0;

    public static bool LaunchedByMpirun => Environment.GetEnvironmentVariable(WorldSizeVariable) != null;

    /// <summary>Joins the MPI job when mpirun started this process; otherwise a single process.</summary>
    public static DistributedRun Join()
    {
        if (!LaunchedByMpirun) return new DistributedRun(null);
        MpiCommunicator mpi;
        try
        {
            mpi = new MpiCommunicator();
        }
        catch (MpiUnavailableException e)
        {
            throw new CliException(e.Message);
        }
        if (Environment.GetEnvironmentVariable("NABLA_THREADS") == null)
        {
            int local = int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_SIZE"), out var l) && l > 0 ? l : 1;
            WorkerPool.Threads = Math.Max(1, Environment.ProcessorCount / local);
        }
        if (mpi.Rank != 0) Console.SetOut(TextWriter.Null);
        return new DistributedRun(mpi);
    }

    /// <summary>Runs a command's body on this rank. With several ranks, a failure prints "error: rank R: ..." and
    /// ends the whole job through MPI_Abort, so that no rank waits for this one.</summary>
    public int Run(Func<int> body)
    {
        if (Size == 1) return body();
        try
        {
            return body();
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"error: rank {Rank} of {Size}: {ErrorText.OneLine(CliErrors.Describe(e))}");
            Console.Error.Flush();
            _mpi!.Abort(1);
            throw; // not reached: MPI_Abort ends the process
        }
    }

    /// <summary>Runs a `nabla train` command: under `mpirun` itself for --ranks N, else as one rank of the MPI job
    /// that started this process (or as the only process), calling <paramref name="train"/> with the run directory,
    /// whether to resume it, and this rank. Under mpirun every rank must train into the same run directory, so --out
    /// is required there (a default one would be named by each rank's clock).</summary>
    public static int Launch(ParseResult parse, Option<int> ranksOption, RunOptions run, Func<string, bool, DistributedRun, int> train)
    {
        var (directory, resume) = run.RunDirectory(parse);
        if (Relaunch(parse, ranksOption, run.Out, directory) is { } exitCode) return exitCode;
        using var distributed = Join();
        return distributed.Run(() =>
        {
            if (distributed.Size > 1 && parse.GetValue(run.Out) == null)
                throw new CliException("--out is required under mpirun: every rank must train into the same run directory.");
            return train(directory, resume, distributed);
        });
    }

    /// <summary>For --ranks N (N &gt; 1) outside mpirun: runs this same command line under `mpirun -np N` (with
    /// <paramref name="runDirectory"/> as <paramref name="outOption"/> when it was not given, so that every rank writes to
    /// the same run) and returns its exit code; otherwise null, and the caller trains here.</summary>
    public static int? Relaunch(ParseResult parse, Option<int> ranksOption, Option<string?>? outOption = null, string? runDirectory = null)
    {
        int ranks = parse.GetValue(ranksOption);
        if (ranks == 1) return null;
        if (LaunchedByMpirun) throw new CliException("--ranks: this process was started by mpirun already; choose the number of ranks with mpirun -np and leave --ranks out.");
        var mpirun = FindOnPath("mpirun") ?? throw new CliException("--ranks needs mpirun, which is not installed (Debian: apt-get install openmpi-bin libopenmpi-dev).");
        var arguments = new List<string> { "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "--oversubscribe" };
        if (Environment.UserName == "root") arguments.Add("--allow-run-as-root");
        // This program again: `dotnet nabla.dll` when run through the dotnet host, else the apphost itself.
        var process = Environment.ProcessPath ?? "dotnet";
        if (Path.GetFileNameWithoutExtension(process) == "dotnet") arguments.AddRange([process, typeof(NablaCli).Assembly.Location]);
        else arguments.Add(process);
        var tokens = parse.Tokens.ToList();
        for (int i = 0; i < tokens.Count; i++)
        {
            if (tokens[i].Type == TokenType.Option && ranksOption.Name == tokens[i].Value) { i++; continue; }
            arguments.Add(tokens[i].Value);
        }
        if (outOption != null && runDirectory != null && parse.GetValue(outOption) == null) arguments.AddRange([outOption.Name, runDirectory]);
        var start = new ProcessStartInfo(mpirun, arguments) { UseShellExecute = false };
        start.Environment["TERM"] = "dumb"; // mpirun's output is not a terminal the ranks can draw progress bars on
        using var child = Process.Start(start) ?? throw new CliException($"could not start {mpirun}.");
        child.WaitForExit();
        return child.ExitCode;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    public void Dispose() => _mpi?.Dispose();
}
