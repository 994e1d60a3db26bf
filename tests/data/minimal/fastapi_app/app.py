"""A tiny FastAPI app for tests/test_minimal.py: one endpoint with a pydantic response model."""

from typing import Optional

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    id: int
    name: str
    q: Optional[str] = None


@app.get("/items/{item_id}")
def read_item(item_id: int, q: Optional[str] = None) -> Item:
    return Item(id=item_id, name=f"item-{item_id}", q=q)
