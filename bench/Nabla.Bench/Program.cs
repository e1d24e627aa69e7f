// Nabla benchmarks: under construction.
Console.WriteLine("nabla bench");
