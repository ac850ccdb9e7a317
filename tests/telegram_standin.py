"""A TelegramClient that never connects: its `__call__` (where every request goes) answers the
requests `get_entity`, `iter_messages` / `get_messages` and `takeout` issue from channels kept in
memory, so Telethon's own paging code runs against it. Every request is recorded; a flood wait or
a crash can be set off on chosen history requests."""

from __future__ import annotations

import bisect
import copy
from datetime import datetime, timedelta, timezone

from telethon import TelegramClient, errors, utils
from telethon.sessions import MemorySession
from telethon.tl import functions, types

BASE = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)
WORDS = ["паводок", "дорога", "выборы", "урожай", "школа", "мост", "театр", "больница", "рынок", "погода"]


class Killed(BaseException):
    """The process dies (not an error the collector may catch)."""


class Chan:
    def __init__(self, channel_id: int, username: str | None, title: str, megagroup: bool = False):
        self.entity = types.Channel(id=channel_id, title=title, photo=types.ChatPhotoEmpty(), date=BASE,
                                    access_hash=channel_id * 7, username=username, broadcast=not megagroup,
                                    megagroup=megagroup)
        self.messages: dict[int, types.Message] = {}
        self.next_id = 1

    @property
    def peer(self) -> types.PeerChannel:
        return types.PeerChannel(self.entity.id)

    def add(self, text: str = "", **kw) -> types.Message:
        mid = kw.pop("id", None) or self.next_id
        self.next_id = max(self.next_id, mid + 1)
        kw.setdefault("date", BASE + timedelta(minutes=mid))
        kw.setdefault("views", 100 + mid)
        msg = types.Message(id=mid, peer_id=self.peer, message=text, post=not self.entity.megagroup, **kw)
        self.messages[mid] = msg
        return msg

    def add_many(self, n: int) -> list[types.Message]:
        return [self.add(f"Новость {self.next_id}: {WORDS[self.next_id % len(WORDS)]} в городе {self.next_id}.")
                for _ in range(n)]

    def edit(self, mid: int, text: str) -> None:
        msg = self.messages[mid]
        msg.message = text
        msg.edit_date = msg.date + timedelta(hours=1)


class Standin(TelegramClient):
    def __init__(self, authorised: bool = True):
        super().__init__(MemorySession(), api_id=1, api_hash="0" * 32)
        self.chans: dict[int, Chan] = {}
        self.requests: list = []
        self.authorised = authorised
        self.floods: list[dict] = []      # {"channel", "nth", "seconds", "times"} on history requests
        self.crash_after: int | None = None   # history requests answered before the process "dies"
        self.history_calls: dict[str, int] = {}
        self.takeouts = 0
        self.history_offsets: list[int] = []

    # -- never connect ---------------------------------------------------------------------------
    async def connect(self):
        return None

    def is_connected(self):
        return True

    async def disconnect(self):
        return None

    async def is_user_authorized(self):
        return self.authorised

    async def get_me(self, input_peer=False):
        return types.User(id=1, is_self=True, first_name="Tester", access_hash=1)

    # -- channels --------------------------------------------------------------------------------
    def add_channel(self, username: str | None, n: int = 0, *, channel_id: int | None = None, title: str = "",
                    megagroup: bool = False) -> Chan:
        channel_id = channel_id or 1000 + len(self.chans) + 1
        chan = Chan(channel_id, username, title or f"Канал {username or channel_id}", megagroup)
        self.chans[channel_id] = chan
        chan.add_many(n)
        return chan

    def by_name(self, name: str) -> Chan | None:
        return next((c for c in self.chans.values() if (c.entity.username or "").lower() == name.lower()), None)

    def _chan(self, peer) -> Chan:
        channel_id = getattr(peer, "channel_id", None)
        if channel_id not in self.chans:
            raise errors.ChannelInvalidError(request=None)
        return self.chans[channel_id]

    def _chats(self, chan: Chan, messages) -> list:
        chats = {chan.entity.id: chan.entity}
        for m in messages:
            fwd = getattr(m, "fwd_from", None)
            if fwd is not None and isinstance(fwd.from_id, types.PeerChannel) and fwd.from_id.channel_id in self.chans:
                chats[fwd.from_id.channel_id] = self.chans[fwd.from_id.channel_id].entity
        return list(chats.values())

    def count(self, kind) -> int:
        return sum(isinstance(r, kind) for r in self.requests)

    # -- the one place requests go -----------------------------------------------------------------
    async def __call__(self, request, ordered=False, flood_sleep_threshold=None):
        if isinstance(request, functions.InvokeWithTakeoutRequest):
            request = request.query
        await request.resolve(self, utils)   # as TelegramClient._call does (ints -> InputMessageID, ...)
        self.requests.append(request)
        if isinstance(request, functions.account.InitTakeoutSessionRequest):
            self.takeouts += 1
            return types.account.Takeout(id=77)
        if isinstance(request, functions.account.FinishTakeoutSessionRequest):
            return True
        if isinstance(request, functions.contacts.ResolveUsernameRequest):
            chan = self.by_name(request.username)
            if chan is None:
                raise errors.UsernameNotOccupiedError(request=request)
            return types.contacts.ResolvedPeer(peer=chan.peer, chats=[chan.entity], users=[])
        if isinstance(request, functions.channels.GetChannelsRequest):
            return types.messages.Chats(chats=[self._chan(c).entity for c in request.id])
        if isinstance(request, functions.messages.GetHistoryRequest):
            return self._history(request)
        if isinstance(request, functions.channels.GetMessagesRequest):
            chan = self._chan(request.channel)
            wanted = [i.id for i in request.id]
            msgs = [copy.copy(chan.messages[i]) if i in chan.messages else types.MessageEmpty(id=i, peer_id=chan.peer) for i in wanted]
            return types.messages.ChannelMessages(pts=1, count=len(msgs), messages=msgs, topics=[],
                                                  chats=self._chats(chan, msgs), users=[])
        raise NotImplementedError(f"stand-in has no answer for {type(request).__name__}")

    def _history(self, request):
        chan = self._chan(request.peer)
        name = chan.entity.username or f"c{chan.entity.id}"
        done = sum(self.history_calls.values())
        if self.crash_after is not None and done >= self.crash_after:
            raise Killed(f"killed after {done} history requests")
        nth = self.history_calls.get(name, 0) + 1
        for flood in self.floods:
            if flood["channel"] == name and flood["nth"] == nth and flood["times"] > 0:
                flood["times"] -= 1
                raise errors.FloodWaitError(request=request, capture=flood["seconds"])
        self.history_calls[name] = nth
        self.history_offsets.append(request.offset_id)   # Telethon moves the offset of the request it pages with
        # Telegram's paging: newest first; offset_id excludes itself and newer; add_offset shifts
        ids = sorted(chan.messages, reverse=True)
        if request.offset_id:
            index = bisect.bisect_left([-i for i in ids], -request.offset_id + 1)   # first id < offset_id
        else:
            index = 0
        start = index + request.add_offset
        end = start + request.limit
        page = [copy.copy(chan.messages[i]) for i in ids[max(0, start):max(0, end)]]
        return types.messages.ChannelMessages(pts=1, count=len(ids), messages=page, topics=[],
                                              chats=self._chats(chan, page), users=[])
