"""The messages of one GLM request within a token budget (`build`), and the offline token
estimates it is measured in (`tokens`). The trimming policy lives in `build`."""
