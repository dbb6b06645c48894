// png tests: being written
