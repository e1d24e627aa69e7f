// The nabla command-line tool: under construction.
Console.WriteLine("nabla");
