-- decide is not a function: the load must fail.
decide = "yes"
