await Keel.Sample.Orders.OrdersApp.Build(args).RunAsync();
