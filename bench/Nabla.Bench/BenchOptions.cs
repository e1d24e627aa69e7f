namespace Nabla.Bench;

/// <summary>Command-line options shared by the benchmark commands.</summary>
internal sealed record BenchOptions(bool Json, int[] Threads, string Shapes, bool Torch, int Rounds, double MaxOthersPercent, int Retries,
    double WaitBudgetSeconds, bool Previous, bool CpuTime)
{
    public static BenchOptions Parse(string[] args)
    {
        bool json = false, torch = true, previous = false, cpuTime = false;
        int[] threads = [1, 2];
        string shapes = "all";
        int rounds = 5, retries = 1;
        double maxOthers = 10, waitBudget = 60;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--json": json = true; break;
                case "--no-torch": torch = false; break;
                case "--previous": previous = true; break;
                case "--cpu-time": cpuTime = true; break;
                case "--threads": threads = Value(args, ref i).Split(',').Select(int.Parse).ToArray(); break;
                case "--shapes": shapes = Value(args, ref i); break;
                case "--rounds": rounds = int.Parse(Value(args, ref i)); break;
                case "--max-others": maxOthers = double.Parse(Value(args, ref i), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--retries": retries = int.Parse(Value(args, ref i)); break;
                case "--wait-budget": waitBudget = double.Parse(Value(args, ref i), System.Globalization.CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"Unknown option '{args[i]}'.");
            }
        }
        return new BenchOptions(json, threads, shapes, torch, rounds, maxOthers, retries, waitBudget, previous, cpuTime);
    }

    private static string Value(string[] args, ref int i) =>
        ++i < args.Length ? args[i] : throw new ArgumentException($"Option '{args[i - 1]}' needs a value.");
}
