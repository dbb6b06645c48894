// png: being written
