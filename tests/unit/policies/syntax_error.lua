function decide(req, ctx)
  return {
    model = "x" +
  }
end
